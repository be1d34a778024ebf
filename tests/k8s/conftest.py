"""Fixtures of the Kubernetes tests: `standin`, the API server stand-in over HTTPS (tests/apiserver/fixtures.py)."""

from tests.apiserver.fixtures import standin

__all__ = ["standin"]
