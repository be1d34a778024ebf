"""The `standin` fixture: the API server stand-in on https://127.0.0.1:<free port>, a kubeconfig for it, and kubectl.

Test folders that need it re-export it from their conftest (`from tests.apiserver.fixtures import standin`).
The server starts with the `default` namespace (as a cluster has it) and stops when the test ends.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from serving.gitops.tools import find_tool
from tests.apiserver.http import HttpApiServer, serving
from tests.apiserver.server import ApiServer


@dataclass
class Standin:
    """A started HTTP stand-in and the kubeconfig that reaches it (contexts `admin`, `agent`, `controller`)."""

    http: HttpApiServer
    kubeconfig: Path

    @property
    def api(self) -> ApiServer:
        """The stand-in behind the socket (its store, knobs and request log)."""
        return self.http.api

    def env(self, **more: str) -> dict[str, str]:
        """This process's environment with KUBECONFIG pointing at the stand-in."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), **more}

    def kubectl(self, *args: str, context: str = "admin", stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against the stand-in as `context`'s user."""
        command = [find_tool("kubectl"), f"--context={context}", *args]
        return subprocess.run(
            command, input=stdin, capture_output=True, text=True, check=False, env=self.env(), timeout=120
        )


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[Standin]:
    """The stand-in over HTTPS for one test, with a kubeconfig in tmp_path."""
    api = ApiServer()
    api.store.add_namespace("default")
    with serving(api) as http:
        yield Standin(http, http.kubeconfig(tmp_path / "kubeconfig"))
