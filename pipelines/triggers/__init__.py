"""Retraining triggers: decide whether a signal may start a training run, record why, and start it."""
