"""Grafana dashboards as code: built with grafana-foundation-sdk, committed as JSON in the Helm chart."""
