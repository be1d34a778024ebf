"""Fixtures of the rollout fault tests: one registry with three models, one local stack, live traffic."""

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from components.common.tracking import CHAMPION, connect
from serving.rollout.controller import Controller, Outcome
from serving.rollout.local import LocalStack
from serving.rollout.observe import MetricsSource
from serving.rollout.record import RolloutRecorder
from serving.rollout.spec import parse_spec
from serving.rollout.traffic import TrafficGenerator, TrafficLog
from serving.rollout.train_drill import held_out_instances, register_drill_model

MODEL = "rollout-faults"
SEED = 11
RATE = 60.0
SPEC = {
    "steps": [10, 50, 100],
    "interval": "2s",
    "minRequests": 5,
    "progressDeadline": "1m",
    "checks": [
        {"name": "success-rate", "min": 0.99, "failureLimit": 2},
        {"name": "latency-p99", "maxSeconds": 0.5, "maxRatioToStable": 3.0, "failureLimit": 2},
        {"name": "prediction-divergence", "max": 0.25, "minPredictions": 30, "failureLimit": 2},
        {"name": "input-drift", "max": 0.6, "minPredictions": 60, "failureLimit": 3},
    ],
}

needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="prometheus binary not installed (apt-get install -y prometheus)"
)


class Registry:
    """The test store: v1 champion (weak), v2 better challenger, v3 garbage (shuffled labels)."""

    def __init__(self, root: Path) -> None:
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client: MlflowClient = connect(self.uri)
        self.champion = register_drill_model(self.uri, MODEL, seed=SEED, train_fraction=0.3, alias=CHAMPION)
        self.good = register_drill_model(self.uri, MODEL, seed=SEED, train_fraction=1.0)
        self.garbage = register_drill_model(self.uri, MODEL, seed=SEED, shuffle_labels=True)

    def alias(self, alias: str = CHAMPION) -> str:
        return str(self.client.get_model_version_by_alias(MODEL, alias).version)

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(MODEL, version).tags)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def stack(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus binary not installed (apt-get install -y prometheus)")
    with LocalStack(MODEL, registry.uri, tmp_path_factory.mktemp("stack"), metrics="prometheus") as local:
        local.start(registry.champion)
        yield local


@pytest.fixture
def traffic(stack: LocalStack) -> Iterator[TrafficGenerator]:
    generator = TrafficGenerator(stack.url, held_out_instances(SEED), rate=RATE).start()
    yield generator
    generator.stop()


class Rollout:
    """One controller run in a background thread, so a test can break things while it runs."""

    def __init__(
        self,
        stack: LocalStack,
        registry: Registry,
        version: str,
        source: MetricsSource | None = None,
        spec: dict | None = None,
        client: MlflowClient | None = None,
    ) -> None:
        self.lines: list[str] = []
        self.recorder = RolloutRecorder(client or registry.client, MODEL, version, "local")
        self.controller = Controller(
            parse_spec(spec or SPEC), source or stack.source, stack, self.recorder, MODEL, on_line=self.log
        )
        self.outcome: Outcome | None = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def log(self, line: str) -> None:
        logging.getLogger("plinth.rollout").info(line)
        self.lines.append(line)

    def run(self) -> None:
        self.outcome = self.controller.run(None)

    def start(self) -> "Rollout":
        self.thread.start()
        return self

    def wait_for_line(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} within {timeout}s: {self.lines}")

    def result(self, timeout: float = 120.0) -> Outcome:
        self.thread.join(timeout)
        assert self.outcome is not None, f"rollout did not finish: {self.lines}"
        return self.outcome


def failed_share(log: TrafficLog) -> float:
    answers = log.answers
    return sum(1 for a in answers if a.status == 0 or a.status >= 500) / max(1, len(answers))
