"""Fixtures of the rollout tests on real processes: registries of drill models, local stacks, live traffic.

Built for a shared, loaded machine. Every test rolls out a version of its own (a fresh registry version
made from a drill model's files: instant, and no tag or alias left by another test can make an assertion
pass), router counters are compared before and after, and a test that changes the stable moves `champion`
with it (a promotion does), so a shared stack always serves its registry's champion and no test depends on
the order the tests run in. What is slow to build is built once: the drill registries and the reconcile
tests' `versions` per session, a stack per module.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from components.common.task import TAG_TASK
from components.common.tracking import CHAMPION, connect
from serving.embedded.local import LocalStack
from serving.embedded.traffic import Answer, TrafficGenerator, TrafficLog
from serving.embedded.train_drill import BREAST_CANCER, DrillData, register_drill_model
from serving.rollout.core.controller import Controller, Outcome
from serving.rollout.core.observe import CANARY, STABLE, MetricsSource
from serving.rollout.core.record import RolloutRecorder
from serving.rollout.core.spec import parse_spec
from serving.rollout.edges.router import RouterStats
from tests.rollout.versions import Versions

MODEL = "rollout-faults"
SEED = 11
RATE = 60.0
# Enough senders that a canary slowed by SLOW_CANARY_MS still gets its share of the traffic (open loop).
TRAFFIC_WORKERS = 32
SLOW_CANARY_MS = 3000
# Latency bounds for a shared 2-core machine: the canary is judged against the stable's p99 under the same
# load (5x), with an absolute ceiling no healthy p99 reaches here; a canary slowed by 3 s breaks both.
# These tests drive the weighted steps, so the shadow phase is off here; test_shadow.py turns it on.
SPEC: dict[str, Any] = {
    "steps": [10, 50, 100],
    "interval": "2s",
    "minRequests": 5,
    "progressDeadline": "90s",
    "shadow": {"enabled": False},
    "checks": [
        {"name": "success-rate", "min": 0.99, "failureLimit": 2},
        {"name": "latency-p99", "maxSeconds": 2.5, "maxRatioToStable": 5.0, "failureLimit": 2},
        {"name": "prediction-divergence", "max": 0.25, "minPredictions": 30, "failureLimit": 2},
        {"name": "input-drift", "max": 0.6, "minPredictions": 60, "failureLimit": 3},
    ],
}
COPIED_TAGS = (TAG_TASK, "plinth.drill")

needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="prometheus binary not installed (apt-get install -y prometheus)"
)


class Registry:
    """One model in a test store: champion (30 % of the rows), better challenger, garbage (shuffled targets)."""

    def __init__(self, uri: str, model: str, champion: str, good: str, garbage: str) -> None:
        self.uri, self.model = uri, model
        self.client: MlflowClient = connect(uri)
        self.champion, self.good, self.garbage = champion, good, garbage

    @classmethod
    def train(cls, root: Path, model: str = MODEL, data: DrillData = BREAST_CANCER) -> Registry:
        uri = f"sqlite:///{root / 'mlflow.db'}"
        champion = register_drill_model(uri, model, seed=SEED, data=data, train_fraction=0.3, alias=CHAMPION)
        good = register_drill_model(uri, model, seed=SEED, data=data)
        garbage = register_drill_model(uri, model, seed=SEED, data=data, shuffle_labels=True)
        return cls(uri, model, champion, good, garbage)

    def copy(self, version: str, model: str | None = None) -> str:
        """Register the files of `version` again (under `model`, default this one): same model, no history."""
        found = self.client.get_model_version(self.model, version)
        tags = {key: value for key, value in found.tags.items() if key in COPIED_TAGS}
        assert found.source is not None
        source = found.source
        if source.startswith("models:/m-"):
            # MLflow's registry store resolves a logged-model URI with a client on the *global* tracking URI,
            # which an earlier test may have pointed at another store: hand it the concrete location.
            source = self.client.get_logged_model(source.removeprefix("models:/")).artifact_location
        created = self.client.create_model_version(model or self.model, source, found.run_id, tags=tags)
        return str(created.version)

    def fork(self, model: str) -> Registry:
        """Return the same three models under another name, `champion` set: a registry of the test's own."""
        self.client.create_registered_model(model)
        champion, good, garbage = (self.copy(v, model) for v in (self.champion, self.good, self.garbage))
        self.client.set_registered_model_alias(model, CHAMPION, champion)
        return Registry(self.uri, model, champion, good, garbage)

    def alias(self, alias: str = CHAMPION) -> str:
        return str(self.client.get_model_version_by_alias(self.model, alias).version)

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(self.model, version).tags)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry.train(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="session")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    """The reconcile tests' registry, built once: each test that uses it calls `forget_rollouts` afterwards."""
    return Versions(tmp_path_factory.mktemp("reconcile"))


def start_stack(registry: Registry, workdir: Path) -> LocalStack:
    """Start Prometheus, the stable (serving the version `champion` points to now) and the router."""
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus binary not installed (apt-get install -y prometheus)")
    stack = LocalStack(registry.model, registry.uri, workdir, metrics="prometheus")
    try:
        stack.start(registry.alias(CHAMPION))
    except BaseException:
        stack.close()
        raise
    return stack


def traffic_for(stack: LocalStack, rows: list[dict]) -> TrafficGenerator:
    """Start steady traffic of `rows` through the stack's router."""
    return TrafficGenerator(stack.url, rows, rate=RATE, workers=TRAFFIC_WORKERS).start()


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
        pre_traffic: Callable[[], str | None] | None = None,
    ) -> None:
        self.lines: list[str] = []
        self.recorder = RolloutRecorder(client or registry.client, registry.model, version, "local")
        self.controller = Controller(
            parse_spec(spec or SPEC),
            source or stack.source,
            stack,
            self.recorder,
            registry.model,
            on_line=self.log,
            pre_traffic=pre_traffic,
        )
        self.outcome: Outcome | None = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def log(self, line: str) -> None:
        logging.getLogger("plinth.rollout").info(line)
        self.lines.append(line)

    def run(self) -> None:
        self.outcome = self.controller.run(None)

    def start(self) -> Rollout:
        self.thread.start()
        return self

    def wait_for_line(self, text: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if not self.thread.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r}: {self.lines}")

    def result(self, timeout: float = 180.0) -> Outcome:
        self.thread.join(timeout)
        assert self.outcome is not None, f"rollout did not finish: {self.lines}"
        return self.outcome


@dataclass(frozen=True)
class RouterCounts:
    """The router's cumulative counters at one moment; `since` gives what happened after it."""

    answers: dict[str, dict[int, int]]
    retried_on_stable: int

    @classmethod
    def of(cls, stats: RouterStats) -> RouterCounts:
        return cls({track: dict(stats.answers[track]) for track in (STABLE, CANARY)}, stats.retried_on_stable)

    def since(self, earlier: RouterCounts) -> RouterCounts:
        answers = {
            track: {code: n - earlier.answers[track].get(code, 0) for code, n in self.answers[track].items()}
            for track in (STABLE, CANARY)
        }
        return RouterCounts(answers, self.retried_on_stable - earlier.retried_on_stable)


def dropped(log: TrafficLog) -> list[Answer]:
    """Answers a client got as a failure: a 5xx, or no answer for any reason but its own timeout.

    A client timeout (10 s) is the machine being slow, not the rollout dropping the request: a request
    cut off by a stopped backend reaches the client as the router's 502 or a broken connection.
    """
    return [a for a in log.answers if a.status >= 500 or (a.status == 0 and a.error != "timeout")]


def timed_out_share(log: TrafficLog) -> float:
    """Return the share of requests whose client gave up waiting."""
    return sum(1 for a in log.answers if a.error == "timeout") / max(1, len(log.answers))
