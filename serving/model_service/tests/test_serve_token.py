"""`make serve` on one machine: without PLINTH_FEEDBACK_TOKENS it makes up one labelling token and prints it.

The label curl of the root README uses that token (`export TOKEN=…` as printed): it is accepted, and the
same label without it, or with another token, is refused 401. (The README tier types the README's own block,
`tests/docs/test_loop.py`; this runs what `make serve` runs, against the test registry, in seconds.)
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import httpx
import pytest

from serving.bench.demo_model import RegisteredModel
from serving.embedded.processes import ManagedProcess, free_port
from serving.model_service import settings

pytestmark = pytest.mark.integration


def test_make_serve_prints_a_token_that_labels_and_nothing_else_does(
    registered: RegisteredModel, tmp_path: Path
) -> None:
    assert settings.ENV_FEEDBACK_TOKENS not in os.environ, "the case under test: no labelling client configured"
    port = free_port()
    env = {
        "PORT": str(port),
        "PLINTH_HOME": str(tmp_path / "home"),
        settings.ENV_TRACKING_URI: registered.tracking_uri,
        settings.ENV_MODEL_NAME: registered.name,
        settings.ENV_WORKERS: "1",
    }
    log = tmp_path / "serve.log"
    serve = ManagedProcess(
        "make serve", [sys.executable, "-m", "serving.model_service.serve"], log, env, f"http://127.0.0.1:{port}/readyz"
    )
    serve.start()
    try:
        serve.wait_ready()
        printed = re.search(r"^\s*feedback\s+POST \S+/feedback\s.*export TOKEN=(\S+)$", log.read_text(), re.MULTILINE)
        assert printed, log.read_text()[-2000:]
        token = printed[1]
        base = f"http://127.0.0.1:{port}"
        answer = httpx.post(f"{base}/predict", json={"instances": registered.instances(0, 1)}, timeout=30)
        [prediction] = answer.json()["predictions"]
        body = {"request_id": prediction["request_id"], "label": prediction["label"]}
        refused = [
            httpx.post(f"{base}/feedback", json=body, headers=headers, timeout=30)
            for headers in ({}, {"Authorization": "Bearer made-up-token-of-some-pod"})
        ]
        accepted = httpx.post(f"{base}/feedback", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    finally:
        serve.stop()
    assert [response.status_code for response in refused] == [401, 401]
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["result"] == "accepted"
    assert len(token) >= 40  # secrets.token_urlsafe(32)
