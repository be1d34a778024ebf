"""GitOps helpers: promote what one environment serves into the next overlay's desired version; chart docs."""
