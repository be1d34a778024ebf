"""One experiment, look by look: guards first, then the outcomes and the decision, until it is final.

The loop knows no process or cluster: it is given the store the feedback lands in, the variants' versions
and the guards' metrics sources, so the same loop runs on one machine (`make ab`) and beside a cluster's
shared store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from serving.experiments.decide import GUARD, Decision, decide
from serving.experiments.guards import Guards
from serving.experiments.outcomes import Outcomes, read_outcomes
from serving.experiments.report import History
from serving.experiments.spec import ExperimentSpec, Variant
from serving.model_service.store import PredictionStore, StoreError

LOG = logging.getLogger("plinth.experiments")


class Refused(Exception):
    """The experiment cannot start; the message is the one line the user reads."""


def resolve_versions(
    client: MlflowClient,
    model_name: str,
    spec: ExperimentSpec,
    missing: Callable[[Variant], str | None] | None = None,
) -> dict[str, str]:
    """Return each variant's registered version (its pin, or where its alias points).

    `missing` may supply a version for a variant whose alias is not set (`make ab` trains a drill model).

    Raises:
        Refused: a version or alias is not in the registry (and `missing` does not supply it), or two
            variants share a version: outcomes are told apart by the version that made the prediction.
    """
    versions: dict[str, str] = {}
    for variant in spec.variants:
        try:
            found = (
                client.get_model_version(model_name, variant.version)
                if variant.version is not None
                else client.get_model_version_by_alias(model_name, str(variant.alias))
            )
            versions[variant.name] = str(found.version)
        except MlflowException as error:
            supplied = missing(variant) if missing is not None and variant.alias else None
            if supplied is None:
                raise Refused(f"variant {variant.name}: {str(error).splitlines()[0]}") from error
            versions[variant.name] = supplied
    if len(set(versions.values())) < len(versions):
        raise Refused(f"variants must be distinct versions (outcomes are told apart by version), got {versions}")
    return versions


class Interrupted(Exception):
    """The loop was stopped before a decision and records none: a restarted loop resumes the experiment."""


@dataclass(frozen=True)
class Finished:
    """How the experiment ended: the decision, every look, its duration and what the outcomes measured."""

    decision: Decision
    history: History
    duration_s: float
    measure: str


def progress(spec: ExperimentSpec, elapsed: float, outcomes: Outcomes, decision: Decision) -> str:
    """Return one line per look: each variant's outcomes, each treatment's effect and interval."""
    parts = [f"{elapsed:5.0f}s"]
    for comparison in decision.comparisons:
        low, high = comparison.result.interval
        parts.append(
            f"{spec.control} {comparison.control.n} ({comparison.control.mean:.3f}) vs {comparison.treatment} "
            f"{comparison.tally.n} ({comparison.tally.mean:.3f}) {outcomes.measure}: "
            f"{comparison.effect:+.3f} [{low:+.3f}, {high:+.3f}] {comparison.verdict}"
        )
    return "  ".join(parts)


def run_experiment(
    spec: ExperimentSpec,
    store: PredictionStore,
    model_name: str,
    versions: Mapping[str, str],
    guards: Guards,
    stop: threading.Event,
    say: Callable[[str], None],
    since_ms: int | None = None,
    decide_on_stop: bool = True,
) -> Finished:
    """Look every `interval` until the decision is final (or `stop` is set: the decision so far, at maxDuration).

    `since_ms` (Unix ms, default now) is when the experiment began: a loop restarted mid-experiment passes it,
    so it counts the same outcomes and the same `maxDuration` as the loop before it. With `decide_on_stop`
    false (the chart's Deployment, whose pod a rollout or a node drain stops) `stop` ends the loop undecided:
    the next pod resumes the experiment from `since_ms` instead of ending it early.

    Raises:
        Interrupted: `stop` was set while `decide_on_stop` is false.
    """
    now_ms = store.now_ms()
    since_ms = now_ms if since_ms is None else since_ms
    started = time.monotonic() - max(0, now_ms - since_ms) / 1000
    history = History([])
    guards.start()
    measure = "accuracy" if spec.outcome == "label" else "mean outcome"
    while True:
        stopped = stop.wait(spec.interval)
        if stopped and not decide_on_stop:
            raise Interrupted(f"stopped after {time.monotonic() - started:.0f}s, undecided")
        elapsed = time.monotonic() - started
        stopped_by = guards.judge()
        try:
            outcomes = read_outcomes(store, model_name, versions.values(), since_ms, spec.outcome)
        except StoreError as error:
            LOG.warning("outcomes not read this look: %s", error)
            outcomes = Outcomes({}, measure)
        measure = outcomes.measure if outcomes.tallies else measure
        decision = decide(spec, outcomes, dict(versions), spec.max_duration if stopped else elapsed)
        if stopped_by:
            decision = Decision(True, GUARD, spec.control, stopped_by, decision.comparisons)
        history.add(elapsed, decision, stopped_by)
        say(progress(spec, elapsed, outcomes, decision))
        if decision.final:
            return Finished(decision, history, elapsed, measure)
