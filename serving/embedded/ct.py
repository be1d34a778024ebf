"""`make ct`: the continuous-training loop on one machine, closed without a person.

The champion is served behind the router, as in `make demo`; Prometheus evaluates the chart's drift alert on
the services' metrics and sends it to a real Alertmanager, which posts to the trigger receiver
(pipelines/triggers) running in this process. The receiver applies the guard rails and starts a training
run (the `make train` entry point) on the configured source, with the trigger as the run's `trigger`
parameter. When a run registers a challenger, this loop rolls it out as a canary with the rollout
controller, which promotes it or rolls it back. Every event is one printed line.

Users send requests to the router's URL, printed at start. Everything lives in $PLINTH_HOME, so `make ct`
continues the champion that `make train` registered.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import httpx
from mlflow.exceptions import MlflowException

from components.common.state import local_tracking_uri, plinth_home
from components.common.tracking import CHALLENGER, CHAMPION, connect
from pipelines.training.pipeline import DEFAULT_MODEL_NAME
from pipelines.triggers.act import Actor, Outcome
from pipelines.triggers.auth import new_token
from pipelines.triggers.policy import Guardrails, Trigger
from pipelines.triggers.receive import serve
from pipelines.triggers.record import TriggerRecord
from pipelines.triggers.start import FAILED, RUNNING, SUCCEEDED, LocalStarter
from serving.embedded.alerting import DriftRule, LocalAlertmanager
from serving.embedded.local import LocalStack
from serving.embedded.pipeline_progress import step_line
from serving.embedded.processes import free_port
from serving.rollout.core import controller
from serving.rollout.core.record import RolloutRecorder
from serving.rollout.core.spec import load_spec
from serving.rollout.core.telemetry import serve_metrics

ENVIRONMENT = "local"
ROLLOUT_STATUS_TAG = f"plinth.rollout.{ENVIRONMENT}.status"
CT_SPEC = Path(__file__).parents[1] / "rollout" / "analysis-ct.yaml"
POLL_S = 1.0


class LoopError(RuntimeError):
    """The loop cannot start; the message says what to do."""


@dataclass(frozen=True)
class LoopConfig:
    """What the loop serves, retrains on, and how fast it reacts."""

    model_name: str
    home: Path
    source: str
    target: str = "target"
    seed: int = 42
    rails: Guardrails = field(default_factory=Guardrails)
    spec: Path = CT_SPEC
    rule: DriftRule = field(default_factory=DriftRule)
    router_port: int = 0

    @property
    def tracking_uri(self) -> str:
        """Return the registry the runs write to and the loop reads."""
        return local_tracking_uri(self.home)


@dataclass(frozen=True)
class Event:
    """One thing the loop saw, at a wall-clock time; the demo's summary is built from these."""

    at: float
    what: str
    detail: str
    data: dict[str, str] = field(default_factory=dict)


class ReportingActor(Actor):
    """The receiver's actor, also telling the loop about each decision as it is made."""

    def __init__(
        self, record: TriggerRecord, starter: LocalStarter, rails: Guardrails, report: Callable[[Outcome], None]
    ) -> None:
        super().__init__(record, starter, rails)
        self.report = report

    def act(self, trigger: Trigger, now: datetime | None = None) -> Outcome:
        """Decide as the receiver does, then report the decision."""
        outcome = super().act(trigger, now)
        self.report(outcome)
        return outcome

    def ignore(self, trigger: Trigger, reason: str) -> Outcome:
        """Record an ignored trigger as the receiver does, then report it."""
        outcome = super().ignore(trigger, reason)
        self.report(outcome)
        return outcome


class ContinuousTraining(AbstractContextManager["ContinuousTraining"]):
    """The loop: stack, alerting and receiver up; then `step()` once a second until stopped."""

    def __init__(self, config: LoopConfig, say: Callable[[str], None], stop: threading.Event) -> None:
        self.config, self.say, self.stop = config, say, stop
        self.events: list[Event] = []
        self.muted = False
        self.client = connect(config.tracking_uri)
        workdir = config.home / "ct"
        run_args = ["--model-name", config.model_name, "--source", config.source, "--target", config.target]
        self.starter = LocalStarter(
            config.home / "trigger-runs",
            args=[*run_args, "--seed", str(config.seed)],
            env={**os.environ, "PLINTH_HOME": str(config.home)},
        )
        record = TriggerRecord(self.client, config.model_name)
        self.actor = ReportingActor(record, self.starter, config.rails, self._decided)
        token = new_token()  # this process's receiver and its Alertmanager share it; nothing else may post
        self.receiver = serve(self.actor, config.model_name, "127.0.0.1", 0, token=token)
        receiver_address = f"127.0.0.1:{self.receiver.server_address[1]}"
        self.receiver_thread = threading.Thread(target=self.receiver.serve_forever, name="receiver", daemon=True)
        self.alertmanager = LocalAlertmanager(workdir / "alertmanager", f"http://{receiver_address}/alerts", token)
        metrics_port = free_port()
        serve_metrics(metrics_port)
        self.stack = LocalStack(
            config.model_name,
            config.tracking_uri,
            workdir / "stack",
            "prometheus",
            config.router_port,
            {"plinth-trigger-receiver": receiver_address, "plinth-rollout-controller": f"127.0.0.1:{metrics_port}"},
            rule_files=[config.rule.write(workdir / "rules.yml", config.model_name)],
            alertmanager=self.alertmanager.address,
        )
        self.alerts: dict[str, dict] = {}
        self.runs: dict[str, str] = {}
        self.log_offsets: dict[str, int] = {}
        self.rolled_out: set[str] = set()

    def record(self, what: str, detail: str, **data: str) -> None:
        """Keep one event and print its line (unless muted)."""
        self.events.append(Event(time.time(), what, detail, data))
        if not self.muted:
            self.say(detail)

    def mute(self) -> None:
        """Stop printing events, still recording them (the demo prints its summary)."""
        self.muted = True

    def start(self) -> ContinuousTraining:
        """Start Alertmanager, Prometheus, the champion's service, the router and the receiver."""
        try:
            champion = self.client.get_model_version_by_alias(self.config.model_name, CHAMPION)
        except MlflowException:
            raise LoopError(
                f"no {CHAMPION} version of {self.config.model_name} in {self.config.tracking_uri}: run make train first"
            ) from None
        self.rolled_out.add(str(champion.version))
        self.receiver_thread.start()
        self.alertmanager.start().wait_ready(60)
        self.stack.start(str(champion.version))
        self.record("serving", f"serving {CHAMPION} v{champion.version} of {self.config.model_name}")
        return self

    def urls(self) -> dict[str, str]:
        """Return where to look while the loop runs."""
        urls = {"router (send requests here)": self.stack.url, "Alertmanager": self.alertmanager.url}
        if self.stack.prometheus is not None:
            urls["Prometheus"] = self.stack.prometheus.url
        urls["trigger receiver metrics"] = f"http://127.0.0.1:{self.receiver.server_address[1]}/metrics"
        return urls

    def _decided(self, outcome: Outcome) -> None:
        trigger, decision = outcome.trigger, outcome.decision
        started = f" -> run {outcome.run}" if outcome.run else ""
        self.record(
            "trigger",
            f"trigger {trigger.kind}: {decision.action} ({decision.reason}){started}",
            kind=trigger.kind,
            decision=decision.action,
            run=outcome.run,
        )
        if outcome.run:
            self.runs[outcome.run] = RUNNING

    def watch_alerts(self) -> None:
        """Print alerts as Alertmanager sees them fire and resolve."""
        try:
            active = httpx.get(f"{self.alertmanager.url}/api/v2/alerts", params={"active": "true"}, timeout=5).json()
        except (httpx.HTTPError, json.JSONDecodeError) as error:
            self.say(f"alertmanager did not answer: {error}")
            return
        now = {alert["fingerprint"]: alert for alert in active}
        for fingerprint, alert in now.items():
            if fingerprint not in self.alerts:
                labels = alert["labels"]
                value = alert.get("annotations", {}).get("value", "?")
                self.record(
                    "alert",
                    f"alert {labels.get('alertname')} firing: feature {labels.get('feature')} on track "
                    f"{labels.get('track')}, PSI {value[:5]}",
                    name=str(labels.get("alertname")),
                    feature=str(labels.get("feature")),
                )
        for fingerprint, alert in self.alerts.items():
            if fingerprint not in now:
                labels = alert["labels"]
                self.record(
                    "resolved",
                    f"alert {labels.get('alertname')} resolved: feature {labels.get('feature')} on track "
                    f"{labels.get('track')}",
                )
        self.alerts = now

    def watch_runs(self) -> None:
        """Print each triggered run's pipeline steps and its end, and free the guard rails' lease when it ends."""
        for run, state in list(self.runs.items()):
            if state != RUNNING:
                continue
            self.echo_steps(run)
            current = self.starter.state(run)
            if current in (SUCCEEDED, FAILED):
                self.runs[run] = current
                self.actor.settle(datetime.now(UTC))
                self.record("run", f"run {run} {current} (log: {self.starter.logs[run]})", run=run, state=current)

    def echo_steps(self, run: str) -> None:
        """Print the run's step starts and ends that its log gained since the last look (kfp's log is long)."""
        log = self.starter.logs.get(run)
        if log is None or not log.exists():
            return
        with log.open(errors="replace") as handle:
            handle.seek(self.log_offsets.get(run, 0))
            text = handle.read()
            self.log_offsets[run] = handle.tell()
        for line in text.splitlines():
            step = step_line(line)
            if step:
                self.say(f"  run {run} step {step}")

    def pending_challenger(self) -> str | None:
        """Return a challenger version not rolled out yet, else None (also while a triggered run still runs)."""
        if RUNNING in self.runs.values():
            return None
        try:
            version = self.client.get_model_version_by_alias(self.config.model_name, CHALLENGER)
        except MlflowException:
            return None
        number = str(version.version)
        if number in self.rolled_out or version.tags.get(ROLLOUT_STATUS_TAG):
            return None
        return number

    def rollout(self, version: str) -> controller.Outcome:
        """Run the canary analysis on `version` behind the router; the controller moves the aliases."""
        self.rolled_out.add(version)
        tags = self.client.get_model_version(self.config.model_name, version).tags
        why = tags.get("plinth.trigger.kind", "no trigger")
        self.record("registered", f"challenger v{version} registered ({why}): rolling out", version=version)
        self.stack.deploy_canary(version)
        recorder = RolloutRecorder(self.client, self.config.model_name, version, ENVIRONMENT)
        rollout = controller.Controller(
            load_spec(self.config.spec),
            self.stack.source,
            self.stack,
            recorder,
            self.config.model_name,
            self.stop,
            on_line=lambda line: self.say(f"  rollout v{version}: {line}"),
        )
        assert self.stack.stable is not None
        outcome = rollout.run(stable_version=self.stack.stable.version)
        self.record("rollout", f"v{version} {outcome.status}: {outcome.reason}", version=version, status=outcome.status)
        return outcome

    def step(self) -> controller.Outcome | None:
        """One pass: alerts, runs, and a rollout when a run registered a challenger."""
        self.watch_alerts()
        self.watch_runs()
        version = self.pending_challenger()
        return self.rollout(version) if version else None

    def run_until_stopped(self) -> None:
        """Step once a second until the stop event is set (Ctrl-C)."""
        while not self.stop.wait(POLL_S):
            self.step()

    def close(self) -> None:
        """Stop the receiver, the stack and Alertmanager; runs still training are left to finish."""
        if self.receiver_thread.is_alive():  # shutdown() waits for serve_forever, which may never have started
            self.receiver.shutdown()
        self.receiver.server_close()
        self.stack.close()
        self.alertmanager.stop()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Stop everything, also on errors and Ctrl-C."""
        self.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse `make ct`'s flags."""
    parser = argparse.ArgumentParser(prog="python -m serving.embedded.ct", description=__doc__)
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="registered model to serve and retrain")
    parser.add_argument("--source", default="sklearn:breast_cancer", help="training source of triggered runs")
    parser.add_argument("--target", default="target", help="target column of the source")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rails", type=Path, help="guard rails YAML (coolDown, maxRunsPerDay, …)")
    parser.add_argument("--spec", type=Path, default=CT_SPEC, help="canary analysis spec")
    parser.add_argument("--max-psi", type=float, default=DriftRule.max_psi, help="drift alert threshold (PSI)")
    parser.add_argument("--alert-for", default=DriftRule.hold, help="how long drift must hold before it alerts")
    parser.add_argument("--router-port", type=int, default=0, help="router port (default: a free one)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the loop until Ctrl-C."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    started = time.time()

    def say(line: str) -> None:
        print(f"{datetime.now().strftime('%H:%M:%S')} +{time.time() - started:6.1f}s  {line}", flush=True)

    try:
        rails = Guardrails.load(args.rails) if args.rails else Guardrails()
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    config = LoopConfig(
        args.model_name,
        plinth_home(),
        args.source,
        args.target,
        args.seed,
        rails,
        args.spec,
        DriftRule(args.max_psi, args.alert_for),
        args.router_port,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with ContinuousTraining(config, say, stop) as loop:
            loop.start()
            for name, url in loop.urls().items():
                say(f"{name}: {url}")
            say("watching (Ctrl-C stops)")
            loop.run_until_stopped()
    except LoopError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
