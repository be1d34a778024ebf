"""KFP pipeline definitions and their entry points: compile, run locally, submit to a cluster."""
