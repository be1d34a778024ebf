"""`make demo-ct`: the continuous-training loop closing by itself, in about five minutes.

A champion trained on the old scanner's rows serves behind the router under steady traffic. Then the scanner
is recalibrated: the training source is rewritten with the new rows and traffic comes from them. The drift
alert fires in Prometheus, Alertmanager posts it to the trigger receiver, which starts a retrain on the new
data with its reason; the gate proposes the challenger, the canary analysis promotes it. Then a clinic still
on the old scanner sends a burst of old rows: the alert fires again, inside the cool-down, and is recorded
and ignored. The summary gives each step's time from the drift's onset, and the registry's record of why the
new version exists.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from components.common.state import plinth_home
from components.common.tracking import CHAMPION
from components.ingest.core import load_source
from pipelines.triggers.policy import BACKOFF, COALESCE, COOL_DOWN, DAILY_MAX, START
from pipelines.triggers.start import FAILED
from serving.embedded.ct import CT_SPEC, ContinuousTraining, Event, LoopConfig
from serving.embedded.new_world import recalibrated, write_source
from serving.embedded.pipeline_progress import run_pipeline
from serving.embedded.traffic import TrafficGenerator
from serving.rollout.edges.sample_rows import records

MODEL = "plinth-ct-demo"
TARGET = "target"
BASELINE_S = 15.0
PROMOTION_DEADLINE_S = 480.0
SPURIOUS_DEADLINE_S = 180.0
# What a guard rail answers a firing alert it holds (a resolved alert's `ignore`, which may arrive after the
# burst began, is not the answer to the spurious alert).
HELD = (COOL_DOWN, COALESCE, DAILY_MAX, BACKOFF)


class Timeout(RuntimeError):
    """A step of the demo did not happen in time; the message says which."""


class CtDemo:
    """One demo run: a fresh store, the loop, the traffic and the drift scenario."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.home: Path = ((args.home or plinth_home() / "demo-ct") / f"run-{stamp}").resolve()
        self.source = self.home / "data" / "cells.csv"
        self.stop = threading.Event()
        self.started = time.time()

    def say(self, line: str) -> None:
        """Print one progress line with the time since the demo started."""
        print(f"+{time.time() - self.started:6.1f}s  {line}", flush=True)

    def train_champion(self) -> None:
        """Train the first champion with the real pipeline on the old scanner's rows."""
        argv = [sys.executable, "-m", "pipelines.run_local", "--source", str(self.source), "--target", TARGET]
        argv += ["--model-name", MODEL, "--seed", str(self.args.seed)]
        self.say(f"training the champion: {' '.join(argv[1:])}")
        code, lines = run_pipeline(argv, {**os.environ, "PLINTH_HOME": str(self.home)}, self.say)
        if code != 0:
            raise RuntimeError(f"the champion's pipeline failed (exit {code}): {' | '.join(lines[-3:])}")

    def until(self, loop: ContinuousTraining, done: Callable[[], Event | None], seconds: float, what: str) -> Event:
        """Step the loop until `done` returns an event; raise Timeout after `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stop.is_set():
            loop.step()
            event = done()
            if event is not None:
                return event
            self.stop.wait(1.0)
        raise Timeout(f"{what} did not happen within {seconds:.0f}s")

    def run(self) -> int:
        """Run the scenario; return 0 when a drift-triggered version was promoted and the spurious alert ignored."""
        self.home.mkdir(parents=True)
        old_world = load_source("sklearn:breast_cancer")
        write_source(old_world, self.source)
        self.say(f"state in {self.home}; training source {self.source} ({len(old_world)} rows, old scanner)")
        self.train_champion()
        config = LoopConfig(MODEL, self.home, str(self.source), TARGET, self.args.seed, spec=self.args.spec)
        with ContinuousTraining(config, self.say, self.stop) as loop:
            loop.start()
            for name, url in loop.urls().items():
                self.say(f"{name}: {url}")
            traffic = TrafficGenerator(loop.stack.url, records(old_world.drop(columns=[TARGET])), self.args.rate)
            traffic.start()
            try:
                return self.scenario(loop, traffic, old_world)
            except Timeout as error:
                self.say(f"FAILED: {error}; logs in {self.home}")
                return 1
            finally:
                traffic.stop()

    def scenario(self, loop: ContinuousTraining, traffic: TrafficGenerator, old_world: pd.DataFrame) -> int:
        """Drift, retrain, promote; then a spurious alert in the cool-down; then the summary."""
        self.say(f"{self.args.rate:g} requests/s of the old scanner's rows; watching for {BASELINE_S:.0f}s")
        baseline_end = time.monotonic() + BASELINE_S
        while time.monotonic() < baseline_end and not self.stop.is_set():
            loop.step()
            self.stop.wait(1.0)
        new_world = recalibrated(old_world, self.args.seed)
        write_source(new_world, self.source)
        traffic.use(records(new_world.drop(columns=[TARGET])))
        onset = time.time()
        self.say(f"DRIFT: the scanner was recalibrated; {self.source.name} now holds its rows, and so does traffic")
        promoted = self.until(
            loop,
            lambda: next(
                (e for e in loop.events if e.at > onset and (e.what == "rollout" or e.data.get("state") == FAILED)),
                None,
            ),
            PROMOTION_DEADLINE_S,
            "a rollout of a retrained version",
        )
        if promoted.what != "rollout":
            self.say(f"FAILED: the triggered {promoted.detail}")
            return 1
        self.say("waiting for the drift alerts to resolve on the new champion")
        self.until(loop, lambda: promoted if not loop.alerts else None, SPURIOUS_DEADLINE_S, "alert resolution")
        traffic.use(records(old_world.drop(columns=[TARGET])))
        burst = time.time()
        self.say("a clinic still on the old scanner sends its rows: a spurious drift alert, inside the cool-down")
        spurious = self.until(
            loop,
            lambda: next(
                (e for e in loop.events if e.at > burst and e.what == "trigger" and e.data["decision"] in HELD),
                None,
            ),
            SPURIOUS_DEADLINE_S,
            "a decision on the spurious alert",
        )
        loop.mute()
        log = traffic.stop()
        failed = sum(1 for answer in log.answers if answer.status == 0 or answer.status >= 500)
        return self.summary(loop, onset, promoted, burst, spurious, f"{len(log.answers)} requests, {failed} failed")

    def summary(
        self, loop: ContinuousTraining, onset: float, promoted: Event, burst: float, spurious: Event, traffic: str
    ) -> int:
        """Print trigger → run → version → decision with times from the drift's onset; return the exit status."""

        def first(what: str, since: float, **match: str) -> Event | None:
            return next(
                (
                    e
                    for e in loop.events
                    if e.what == what and e.at >= since and all(e.data.get(k) == v for k, v in match.items())
                ),
                None,
            )

        alert = first("alert", onset)
        started = first("trigger", onset, decision=START)
        finished = first("run", onset)
        registered = first("registered", onset)
        version = promoted.data["version"]
        tags = loop.client.get_model_version(MODEL, version).tags
        champion = str(loop.client.get_model_version_by_alias(MODEL, CHAMPION).version)
        lines = ["", "=" * 78, "plinth continuous-training demo summary", "=" * 78]
        lines.append("from the drift's onset (the scanner recalibrated, traffic and data changed):")
        steps = [
            ("drift alert firing", alert),
            ("trigger -> run started", started),
            ("run finished", finished),
            ("challenger registered", registered),
            (f"rollout {promoted.data['status']}", promoted),
        ]
        for name, event in sorted(steps, key=lambda step: step[1].at if step[1] else float("inf")):
            at = f"+{event.at - onset:6.1f}s" if event else "  never"
            lines.append(f"    {at}  {name}: {event.detail if event else '-'}")
        lines.append(f"version v{version}: {CHAMPION} is now v{champion}; its trigger in the registry:")
        for key in ("kind", "reason", "values", "time", "decision"):
            lines.append(f"    plinth.trigger.{key} = {tags.get(f'plinth.trigger.{key}', '(missing)')}")
        lines.append(f"spurious alert, {spurious.at - burst:.1f}s after the burst: {spurious.detail}")
        lines.append(f"traffic: {traffic}")
        lines += ["", "where to look:"]
        lines.append(
            f"    MLflow UI: .venv/bin/mlflow ui --backend-store-uri sqlite:///{self.home}/mlflow.db --port 5000"
        )
        lines.append("    (the plinth-triggers experiment has one run per trigger, whatever was decided)")
        lines.append(f"    training runs' logs: {self.home / 'trigger-runs'}")
        print("\n".join(lines), flush=True)
        ok = (
            promoted.data["status"] == "promoted"
            and champion == version
            and tags.get("plinth.trigger.kind") == "input_drift"
            and spurious.data["decision"] == COOL_DOWN
        )
        return 0 if ok else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the demo's flags."""
    parser = argparse.ArgumentParser(prog="python -m serving.embedded.ct_demo", description=__doc__)
    parser.add_argument(
        "--home", type=Path, help="where each run gets a fresh directory (default: $PLINTH_HOME/demo-ct)"
    )
    parser.add_argument("--spec", type=Path, default=CT_SPEC, help="analysis spec (default: analysis-ct.yaml)")
    parser.add_argument("--rate", type=float, default=50.0, help="synthetic requests per second")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo with a clean shutdown on Ctrl-C and SIGTERM."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    demo = CtDemo(args)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: demo.stop.set())
    return demo.run()


if __name__ == "__main__":
    sys.exit(main())
