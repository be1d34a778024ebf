"""GitOps helpers: move a model version pin between environment overlays, and document the chart's values."""
