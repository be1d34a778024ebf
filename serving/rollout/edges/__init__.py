"""The controller's edges: metrics sources (Prometheus, /metrics), the local router, the cluster, the registry."""
