"""Serving benchmark: the plinth service vs `mlflow models serve` vs a naive pyfunc BentoML service."""
