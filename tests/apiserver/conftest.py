"""The stand-in's own tests: the `standin` fixture (tests/apiserver/fixtures.py)."""

from tests.apiserver.fixtures import standin

__all__ = ["standin"]
