"""`python -m serving.embedded.demo`: the whole loop on one machine, the first thing a newcomer runs.

Train a champion and serve it, train a better challenger and roll it out as a canary behind the router
under synthetic traffic (held-out rows) until it is promoted; then register a deliberately bad challenger
(shuffled labels, bypassing the gate: a drill) and watch the same analysis roll it back. Ends with a
summary and stops everything it started, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from mlflow.exceptions import MlflowException

from components.common.state import local_tracking_uri, plinth_home
from components.common.tracking import CHALLENGER, CHAMPION, connect
from serving.embedded.local import LocalStack
from serving.embedded.measure import exposure
from serving.embedded.pipeline_progress import run_pipeline
from serving.embedded.processes import free_port
from serving.embedded.report import Summary
from serving.embedded.traffic import TrafficGenerator
from serving.embedded.train_drill import held_out_instances, register_drill_model
from serving.rollout.core.controller import Controller, Outcome
from serving.rollout.core.record import RolloutRecorder
from serving.rollout.core.spec import load_spec
from serving.rollout.core.telemetry import serve_metrics

FAST_SPEC = Path(__file__).parents[1] / "rollout" / "analysis-fast.yaml"
MODEL = "plinth-demo"
CHAMPION_FRACTION = 0.1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the demo's flags."""
    parser = argparse.ArgumentParser(prog="python -m serving.embedded.demo", description=__doc__)
    parser.add_argument("--home", type=Path, help="where each run gets a fresh directory (default: $PLINTH_HOME/demo)")
    parser.add_argument("--spec", type=Path, default=FAST_SPEC, help="analysis spec (default: the fast one)")
    parser.add_argument(
        "--train",
        choices=("pipeline", "drill"),
        default="pipeline",
        help="pipeline: pipelines.run_local (about 1.5 min a run); drill: one scikit-learn fit (seconds)",
    )
    parser.add_argument("--rate", type=float, default=60.0, help="synthetic requests per second")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--router-port", type=int, default=0, help="router port (default: a free one)")
    parser.add_argument("--hold", action="store_true", help="keep everything running after the summary")
    return parser.parse_args(argv)


class Demo:
    """One demo run: its state directory, registry, stack and printed timeline."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # A fresh store per run, never a wiped and reused one: the model service caches downloaded versions
        # by tracking URI and version number, so a recreated store at the same path would serve stale models.
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.home: Path = ((args.home or plinth_home() / "demo") / f"run-{stamp}").resolve()
        self.tracking_uri = local_tracking_uri(self.home)
        self.stop = threading.Event()
        self.started = time.time()
        self.summary = Summary(self.tracking_uri)

    def say(self, line: str) -> None:
        """Print one progress line with the time since the demo started."""
        print(f"+{time.time() - self.started:6.1f}s  {line}", flush=True)

    def train(self, fraction: float, alias: str) -> str:
        """Register a model trained on `fraction` of the rows; return the version `alias` points to.

        With `--train pipeline` the real training pipeline runs (its gate decides the alias); when it fails
        or its gate proposes nothing, the demo says so and registers a drill model instead.
        """
        if self.args.train == "pipeline":
            argv = [
                sys.executable,
                "-m",
                "pipelines.run_local",
                "--seed",
                str(self.args.seed),
                "--train-fraction",
                str(fraction),
                "--model-name",
                MODEL,
            ]
            env = {**os.environ, "PLINTH_HOME": str(self.home)}
            self.say(f"training with the pipeline: {' '.join(argv[1:])}")
            returncode, output = run_pipeline(argv, env, self.say)
            if returncode == 0:
                try:
                    return str(connect(self.tracking_uri).get_model_version_by_alias(MODEL, alias).version)
                except MlflowException:
                    pass
            gate = [line.strip() for line in output if line.strip().startswith("gate")]
            why = gate[0] if gate else " | ".join(output[-2:])
            self.say(f"the pipeline proposed no {alias} (exit {returncode}; {why}); registering a drill model")
        return register_drill_model(self.tracking_uri, MODEL, seed=self.args.seed, train_fraction=fraction, alias=alias)

    def rollout(self, stack: LocalStack, traffic: TrafficGenerator, version: str, title: str) -> Outcome:
        """Deploy `version` as the canary and run the analysis with a live progress view."""
        self.say(f"starting canary v{version} ({title})")
        stack.deploy_canary(version)
        since = time.time()
        recorder = RolloutRecorder(connect(self.tracking_uri), MODEL, version, "local")
        controller = Controller(
            load_spec(self.args.spec), stack.source, stack, recorder, MODEL, self.stop, on_line=self.say
        )
        outcome = controller.run(stable_version=stack.stable.version if stack.stable else None)
        assert stack.router is not None
        self.summary.add(title, version, outcome, exposure(stack.router.stats, traffic.log, since))
        return outcome

    def run(self) -> int:
        """Run the loop; return 0 when the good model was promoted and the bad one rolled back."""
        self.home.mkdir(parents=True)
        self.say(f"state in {self.home} (fresh for this run); tracking {self.tracking_uri}")
        # 10% of the rows gives a champion that all the rows beat by more than the gate's margin (measured:
        # ROC AUC 0.986 vs 0.995 at seed 42), so the real pipeline proposes the challenger.
        champion = self.train(CHAMPION_FRACTION, CHAMPION)
        self.say(f"trained champion v{champion} on {CHAMPION_FRACTION:.0%} of the training rows")
        metrics_port = free_port()
        serve_metrics(metrics_port)
        self.summary.urls["controller metrics"] = f"http://127.0.0.1:{metrics_port}/metrics"
        with LocalStack(
            MODEL,
            self.tracking_uri,
            self.home / "rollout",
            "auto",
            self.args.router_port,
            {"plinth-rollout-controller": f"127.0.0.1:{metrics_port}"},
        ) as stack:
            stack.start(champion)
            self.summary.describe(stack)
            self.say(f"serving champion v{champion}; router on {stack.url}")
            traffic = TrafficGenerator(stack.url, held_out_instances(self.args.seed), self.args.rate).start()
            try:
                self.say(f"synthetic traffic: {self.args.rate:g} requests/s of held-out rows")
                good = self.train(1.0, CHALLENGER)
                self.say(f"trained challenger v{good} on all training rows")
                first = self.rollout(stack, traffic, good, "better challenger")
                if self.stop.is_set():
                    return 130
                bad = register_drill_model(
                    self.tracking_uri, MODEL, seed=self.args.seed, shuffle_labels=True, alias=CHALLENGER
                )
                self.say(
                    f"DRILL: registered v{bad}, trained on shuffled labels, straight as challenger "
                    "(bypassing the gate, which would have rejected it)"
                )
                second = self.rollout(stack, traffic, bad, "bad challenger (drill)")
            finally:
                log = traffic.stop()
            self.summary.traffic(log)
            print(self.summary.render(), flush=True)
            if self.args.hold and not self.stop.is_set():
                self.say("holding everything up; Ctrl-C to stop")
                self.stop.wait()
        self.say("stopped everything the demo started")
        return 0 if (first.status, second.status) == ("promoted", "rolled_back") else 1


def main(argv: list[str] | None = None) -> int:
    """Run the demo with a clean shutdown on Ctrl-C and SIGTERM."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    demo = Demo(args)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: demo.stop.set())
    return demo.run()


if __name__ == "__main__":
    sys.exit(main())
