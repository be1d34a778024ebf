"""Serving: the BentoML model service, its metrics and its benchmark (the rollout controller lives in rollout/)."""
