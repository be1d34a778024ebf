"""The plinth model service: one registered MLflow model behind a validated, metered BentoML API."""
