"""The root README's loop by hand, typed as written: train, serve, curl, train again, roll out.

One PLINTH_HOME for the whole module, as a user keeps one. Each step runs once; a test that needs an earlier
step asks for it (so any single test can be run alone), and a step that failed fails every later one with
its own message. Marked `slow` (two real pipeline runs and a rollout): `make test` and CI run it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from components.common.state import local_tracking_uri
from serving.embedded.processes import free_port
from tests.docs.as_typed import Typed, UserShell, tree_unchanged
from tests.docs.readme import Block, Claim, claim

TRAIN_CHAMPION = claim("loop-train-champion")
SERVE = claim("loop-serve")
PREDICT = claim("loop-predict")
FEEDBACK = claim("loop-feedback")
TRAIN_CHALLENGER = claim("loop-train-challenger")
ROLLOUT = claim("loop-rollout")

MODEL = "plinth-classifier"
TRAIN_TIMEOUT_S = 900  # one pipeline run: ~1.5 min on a quiet 2-core machine, several under a loaded one
ROLLOUT_TIMEOUT_S = 600
READY_TIMEOUT_S = 240
EXIT_PROMOTED, EXIT_ROLLED_BACK = 0, 3

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3 * TRAIN_TIMEOUT_S + ROLLOUT_TIMEOUT_S)]


class Loop:
    """The README's steps in one user's shell; each runs at most once and remembers how it ended."""

    def __init__(self, shell: UserShell) -> None:
        self.shell = shell
        self.results: dict[str, Typed | str] = {}

    def step(self, name: str, run: Callable[[], Typed]) -> Typed:
        """Run `name` once; later calls return its result, or fail again with its failure."""
        if name not in self.results:
            try:
                self.results[name] = run()
            except BaseException as error:
                self.results[name] = f"{name}: {(str(error) or type(error).__name__).splitlines()[0]}"
                raise
        result = self.results[name]
        if isinstance(result, str):
            pytest.fail(f"an earlier step failed: {result}")
        return result

    def registry(self) -> MlflowClient:
        uri = local_tracking_uri(self.shell.plinth_home)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def alias(self, alias: str) -> str:
        return str(self.registry().get_model_version_by_alias(MODEL, alias).version)

    def trained(self, name: str, claim_block: Claim, alias: str, version: str) -> Typed:
        """Run a documented `make train`, then check the registry shows `version` under `alias`."""

        def run() -> Typed:
            typed = self.shell.run(claim_block.block(), timeout=TRAIN_TIMEOUT_S)
            assert typed.returncode == 0, f"{claim_block.test_id} exited {typed.returncode}:\n{typed.tail()}"
            assert self.alias(alias) == version, f"after {claim_block.test_id}:\n{typed.tail()}"
            return typed

        return self.step(name, run)

    def champion(self) -> Typed:
        return self.trained("champion", TRAIN_CHAMPION, "champion", "1")

    def challenger(self) -> Typed:
        self.champion()
        return self.trained("challenger", TRAIN_CHALLENGER, "challenger", "2")


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, checkout: Path) -> Loop:
    root = tmp_path_factory.mktemp("loop")
    return Loop(UserShell(home=root / "home", plinth_home=root / "plinth-home", cwd=checkout))


def posted_file(block: Block) -> str:
    """Return the file the documented curl posts (`-d @<path>`), relative to where it runs."""
    found = re.search(r"-d\s+@(\S+)", block.text)
    assert found, f"{block.where}: the documented curl posts no file"
    return found[1]


def instances_in(request: dict[str, Any]) -> int:
    """Return how many rows a /predict body carries, in either documented form."""
    return len(request["instances"]) if "instances" in request else len(request["data"])


def answered_200(metrics: str) -> float:
    """Return how many /predict requests the service counted as answered 200 (BentoML's built-in counter)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "bentoml_service_request_total"
        and sample.labels.get("endpoint") == "/predict"
        and sample.labels.get("http_response_code") == "200"
    )


def test_make_train_registers_the_first_model_as_champion(loop: Loop) -> None:
    typed = loop.champion()
    assert re.search(rf"{MODEL} v1\b.*champion", typed.output), "the summary says what was registered"


def test_make_serve_then_the_documented_curl_answers_with_the_documented_shape(loop: Loop) -> None:
    loop.champion()
    body = loop.shell.cwd / posted_file(PREDICT.block())
    assert body.is_file(), f"the README's curl posts {posted_file(PREDICT.block())}, which is not in the checkout"
    request = json.loads(body.read_text())
    port = str(free_port())  # `PORT=… make serve`, as the README documents; the curl reads the same PORT
    base = f"http://127.0.0.1:{port}"
    log = loop.shell.plinth_home.parent / "make-serve.log"
    with tree_unchanged("make serve", loop.shell.cwd):
        server = loop.shell.start(SERVE.block(), log, ready_url=f"{base}/readyz", PORT=port)
        try:
            server.wait_ready(READY_TIMEOUT_S)
            typed = loop.shell.run(PREDICT.block(), timeout=60, PORT=port)
            # The README's label for the first answer: with the token make serve printed, and without one.
            token = re.search(r"export TOKEN=(\S+)", Path(log).read_text())
            assert token, "make serve prints a labelling token when PLINTH_FEEDBACK_TOKENS is unset"
            request_id = json.loads(typed.output)["predictions"][0]["request_id"]
            anonymous = loop.shell.run(FEEDBACK.block(), timeout=60, PORT=port, TOKEN="", REQUEST_ID=request_id)
            labelled = loop.shell.run(FEEDBACK.block(), timeout=60, PORT=port, TOKEN=token[1], REQUEST_ID=request_id)
            metrics = httpx.get(f"{base}/metrics", timeout=10).text
        finally:
            server.stop()
    assert typed.returncode == 0, typed.tail()
    assert answered_200(metrics) == 1, "the documented curl got HTTP 200"
    answer = json.loads(typed.output)
    assert answer["model_name"] == MODEL
    assert answer["model_version"] == "1"
    predictions = answer["predictions"]
    assert len(predictions) == instances_in(request), "one prediction per instance"
    for prediction in predictions:
        assert prediction["label"] in (0, 1)
        assert 0.0 <= prediction["probability"] <= 1.0
        assert prediction["model_version"] == "1"
    assert "plinth: serving" in Path(log).read_text(), "make serve says what it serves and where"
    assert json.loads(anonymous.output)["error"] == "unauthenticated", anonymous.tail()
    assert json.loads(labelled.output) == {"request_id": request_id, "result": "accepted", "model_version": "1"}


def test_make_train_again_proposes_a_challenger_and_keeps_the_champion(loop: Loop) -> None:
    loop.challenger()
    assert loop.alias("champion") == "1"


def test_make_rollout_ends_in_a_decision_the_registry_records(loop: Loop) -> None:
    loop.challenger()
    # ROLLOUT_ARGS is the README's documented knob: free ports, so a busy 8080 or 9100 cannot fail the test.
    flags = f"--router-port {free_port()} --metrics-port 0"
    typed = loop.step("rollout", lambda: loop.shell.run(ROLLOUT.block(), ROLLOUT_TIMEOUT_S, ROLLOUT_ARGS=flags))
    assert typed.returncode in (EXIT_PROMOTED, EXIT_ROLLED_BACK), typed.tail()
    status = loop.registry().get_model_version(MODEL, "2").tags.get("plinth.rollout.local.status")
    if typed.returncode == EXIT_PROMOTED:
        assert "PROMOTED: champion -> v2" in typed.output, typed.tail()
        assert status == "promoted", typed.tail()
        assert loop.alias("champion") == "2", "a promotion moves the champion alias"
    else:
        assert "ROLLED BACK:" in typed.output, typed.tail()
        assert status == "rolled_back", typed.tail()
        assert loop.alias("champion") == "1", "a rollback leaves the champion alone"
