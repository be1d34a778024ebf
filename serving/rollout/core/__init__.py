"""The controller core: the analysis spec, the checks, the rollout loop and its record; no I/O of its own."""
