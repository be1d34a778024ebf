"""Helpers shared by several steps and by serving: state directory, MLflow wiring, reference profile."""
