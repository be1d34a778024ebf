"""The signer service: the one place in a cluster that holds the model-signing key."""
