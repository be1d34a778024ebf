"""The in-cluster controller: a reconcile loop that compares desired, serving and its own record, then acts.

Every tick reads three things afresh: the version Git wants (the canary Deployment's PLINTH_MODEL_VERSION,
or its alias), what the stable serves and the rollout record (one ConfigMap, `state.py`). Then one of:

- idle: desired == serving; the route is held at 0 % canary and the canary at 0 pods (drift is repaired);
- start: desired is new and not rejected in this environment (or the user asked for a retry of it);
- check: once the canary is ready, before any traffic, it must answer its reference rows as the model did at
  registration (the pre-traffic check; recorded, so a restart never skips nor repeats it);
- shadow: the route mirrors live traffic to the canary at weight 0; its answers are discarded and the same
  analysis judges them, until one interval passes after `shadow.duration`; then the first weighted step;
- analyse: one interval of the analysis at the recorded step; advance, hold or roll back;
- resume: the first tick of a new controller process finds a rollout in progress. It keeps the recorded
  step, failure counts, start time (restarting never forgives a failure nor extends the deadline) and the
  predictions summed so far (at 100 % the stable gets no traffic to rebuild them from),
  re-applies the recorded weight (the record is written before the route, so the route can only lag it),
  and judges the current step only on intervals observed after the restart: no step is ever passed on less
  evidence than the spec demands;
- cancel: Git took the desired version back (or moved on) mid-analysis: weight 0, canary stopped, not rejected;
- blocked: desired was rolled back here, or its files are those of a version rolled back here (the same manifest
  digest registered again as another version); it stays rolled back, without a fake spec change, until a retry.

Nothing waits inside a tick: the canary is scaled up and the stable stamped, and later ticks read their
Deployments' rollout status; a canary that is not ready holds the rollout before any traffic, a stable that has
not rolled out holds the promotion. The progress deadline bounds both, and every refusal: a write the cluster
keeps refusing (an admission denial, 403, 404, 422, 5xx) is counted, said once as a log line and an Event,
and ends the rollout (rolled back) after REFUSAL_LIMIT refusals in a row that no retry can change, or at the
deadline; a rollback whose own writes are refused leaves the rollout blocked, said the same way.

A stop (SIGTERM: node drain, `helm upgrade`) ends the loop between steps and leaves the record as it is, so
the next controller resumes: a restart is never a rollback. Every record write carries the resourceVersion
it read; a conflict (another writer) drops the tick and the next one starts from the fresh record.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from components.common.redact import first_line, redact
from components.common.tracking import CANCELED, INITIALIZED, PROMOTED, ROLLED_BACK
from serving.rollout.core.analyse import Action, Analysis
from serving.rollout.core.baseline import Baseline
from serving.rollout.core.controller import judged
from serving.rollout.core.observe import MetricsSource
from serving.rollout.core.record import RolloutRecorder, now_iso
from serving.rollout.core.spec import AnalysisSpec
from serving.rollout.core.state import CANCELED as PHASE_CANCELED
from serving.rollout.core.state import (
    FAILED,
    PROGRESSING,
    PROMOTING,
    RETRY_ANNOTATION,
    SUCCEEDED,
    Outcome,
    RolloutStatus,
    State,
)
from serving.rollout.core.state import INITIALIZED as PHASE_INITIALIZED
from serving.rollout.core.telemetry import ROLLOUT_DECISIONS, ROLLOUT_REFUSALS, ROLLOUT_WEIGHT

LOG = logging.getLogger("plinth.rollout")
# HTTP answers that no retry changes (bad request, forbidden, not found, method, media type, invalid; an
# admission policy's denial is one of these): this many in a row end the rollout before its deadline.
PERMANENT = frozenset({400, 403, 404, 405, 415, 422})
REFUSAL_LIMIT = 3


class StateConflict(RuntimeError):
    """The record changed since it was read (HTTP 409); the tick is dropped and redone from a fresh read."""


class ClusterRefusal(RuntimeError):
    """The API server refused a call with an answer that is not a conflict; `call` names it, `status` is HTTP's."""

    def __init__(self, call: str, status: int, message: str) -> None:
        super().__init__(f"{call}: HTTP {status}{': ' + message if message else ''}")
        self.call, self.status, self.message = call, status, message

    @property
    def permanent(self) -> bool:
        """Whether retrying the same call cannot succeed (as opposed to a 5xx or a timeout)."""
        return self.status in PERMANENT


@dataclass(frozen=True)
class Readiness:
    """Whether a Deployment's current pods are all up and available; `stuck` says why they never will be."""

    ready: bool
    stuck: str | None = None


@dataclass(frozen=True)
class Desired:
    """What Git asks the environment to serve: a version, or an alias the registry resolves."""

    version: str | None = None
    alias: str | None = None


class ClusterView(Protocol):
    """The few cluster objects the loop reads and writes (HTTPRoute, two Deployments, the record, Events)."""

    def read_desired(self) -> Desired:
        """Return the canary Deployment's model version (or alias): Git's desired state."""

    def read_state(self) -> State | None:
        """Return the record, None when it does not exist yet."""

    def write_state(self, state: State, clear_retry: bool = False) -> State:
        """Create or update the record against its resourceVersion; raise StateConflict on a 409."""

    def served_annotation(self) -> str | None:
        """Return the version the stable's pod template was last rolled out for (None: never by us)."""

    def route_weight(self) -> int:
        """Return the canary's live weight on the route."""

    def set_weight(self, weight: int) -> None:
        """Send `weight` percent to the canary."""

    def route_mirror(self) -> bool:
        """Return whether the route mirrors requests to the canary."""

    def set_mirror(self, on: bool) -> None:
        """Add or remove the route's mirror of live traffic to the canary."""

    def start_canary(self) -> None:
        """Scale the canary up (if it is not); return at once."""

    def canary_ready(self) -> Readiness:
        """Return whether the canary's pods are all up to date and available."""

    def canary_replicas(self) -> int:
        """Return the canary Deployment's desired replicas."""

    def stop_canary(self) -> None:
        """Scale the canary to 0."""

    def serve_on_stable(self, version: str) -> None:
        """Roll the stable out so that its pods load `version` from the record; return at once."""

    def stable_ready(self) -> Readiness:
        """Return whether the stable's pods are all up to date and available."""

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        """Emit a Kubernetes Event about the rollout."""


class Registry(Protocol):
    """What the loop asks of MLflow: aliases, rejections in this environment, the model, outcomes."""

    def resolve(self, alias: str) -> str | None:
        """Return the version `alias` points to, None when it points nowhere or the registry is down."""

    def rejected(self, version: str) -> str | None:
        """Return why `version` was rolled back in this environment per the registry, None if it was not."""

    def digest(self, version: str) -> str | None:
        """Return the manifest digest of `version`'s files (`plinth.signature.digest`), None: unsigned or unknown."""

    def has_profile(self, version: str) -> bool | None:
        """Return whether `version` carries a reference profile (None: not known)."""

    def refusal(self, stable: str, canary: str) -> str | None:
        """Return why `canary` cannot replace `stable` at all (another task), None when it may be tried."""

    def recorder(self, version: str) -> RolloutRecorder:
        """Return the recorder that writes `version`'s rollout tags in this environment."""


def where(status: RolloutStatus) -> str:
    """Say where a rollout stands, for a deadline's reason."""
    if status.phase == PROMOTING:
        return "while the stable rolled out the new version"
    if not status.checked:
        return "before any traffic (the canary was not ready)"
    return "in the shadow phase" if status.shadow else f"at {status.weight}%"


class Reconciler:
    """One environment's controller: `tick()` once per interval until `stop` is set."""

    def __init__(
        self,
        spec: AnalysisSpec,
        view: ClusterView,
        source: MetricsSource,
        registry: Registry,
        model_name: str,
        environment: str,
        stop: threading.Event | None = None,
        on_line: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        pre_traffic: Callable[[str], str | None] | None = None,
    ) -> None:
        self.spec, self.view, self.source, self.registry = spec, view, source, registry
        # Asks the ready canary of a version its reference rows: why it is refused, None when it passed.
        self.pre_traffic = pre_traffic
        self.model_name, self.environment = model_name, environment
        self.stop = stop or threading.Event()
        self.on_line = on_line or LOG.info
        self.clock = clock
        # The analysis this process runs (None: none yet, so a rollout found in the record is resumed).
        self.analysis: Analysis | None = None
        self.analysing: str | None = None
        self.recorders: dict[str, RolloutRecorder] = {}
        self.last_line = ""
        # The last refusal said, and how many permanent ones came in a row (a completed tick resets it).
        self.last_refusal = ""
        self.refusals = 0

    def say(self, line: str, once: bool = False) -> None:
        """Log one line; with `once`, only when it differs from the previous line (idle ticks stay quiet)."""
        if once and line == self.last_line:
            return
        self.last_line = line
        self.on_line(f"[{self.model_name} {self.environment}] {line}")

    def run(self) -> None:
        """Tick every interval until stopped; a failed tick is logged and retried, never turned into a decision."""
        self.say(f"controller started: steps {list(self.spec.steps)}, interval {self.spec.interval:g}s")
        while not self.stop.is_set():
            try:
                self.tick()
            except StateConflict as error:
                self.say(f"record changed under us ({error}); re-reading it next interval")
            except Exception as error:  # an API or registry hiccup: the record is intact, try again
                if self.stop.is_set():
                    break  # a wait cut short by SIGTERM: nothing failed
                LOG.error("reconcile failed: %s", redact("".join(traceback.format_exception(error))))
                self.say(f"reconcile failed, retrying next interval: {type(error).__name__}: {redact(str(error))}")
            self.stop.wait(self.spec.interval)
        self.say("controller stopping; the record stays as it is and the next controller resumes from it")

    def desired_version(self) -> str | None:
        """Return the version Git wants, resolving an alias through the registry."""
        desired = self.view.read_desired()
        if desired.version:
            return desired.version
        return self.registry.resolve(desired.alias) if desired.alias else None

    def tick(self) -> None:
        """One pass of the loop; a call the cluster refuses is counted, said once and may end the rollout."""
        try:
            self.reconcile()
        except ClusterRefusal as error:
            self.refused(error)
            return
        self.refusals = 0

    def reconcile(self) -> None:
        """Read desired, serving and the record, and take the one action they call for."""
        desired = self.desired_version()
        state = self.view.read_state() or State()
        status = state.status
        if desired is None:
            self.say(
                "no desired version: the canary Deployment names no model version and its alias resolves to none", True
            )
            return
        if state.stable_version is None:
            self.initialize(state, desired)
        elif status.phase == PROGRESSING and status.canary_version != desired:
            self.cancel(state, desired)
        elif status.phase in (PROGRESSING, PROMOTING) and self.overdue(status):
            refused = f"; the cluster refused {self.last_refusal}" if self.last_refusal else ""
            deadline = f"progress deadline {self.spec.progress_deadline:g}s exceeded {where(status)}"
            self.roll_back(state, deadline + refused)
        elif status.phase == PROMOTING:
            self.promote(state)
        elif status.phase == PROGRESSING:
            self.analyse(state)
        else:
            self.settle(state, desired)

    def overdue(self, status: RolloutStatus) -> bool:
        """Whether the rollout (or its promotion, timed from its own start) has run past the progress deadline."""
        since = status.promoting_since if status.phase == PROMOTING else status.started_at
        # A promotion recorded by a controller that kept no promotion start gets one on its next tick.
        return bool(since) and self.clock() - since > self.spec.progress_deadline

    def refused(self, error: ClusterRefusal) -> None:
        """Count a refusal, say it once (log line and Event), and end a rollout that permanent ones keep stopping."""
        ROLLOUT_REFUSALS.labels(str(error.status)).inc()
        self.refusals = self.refusals + 1 if error.permanent else 0
        if str(error) != self.last_refusal:
            self.last_refusal = str(error)
            self.say(f"the cluster refused {error}")
            self.view.event("Refused", f"the cluster refused {error}", warning=True)
        if self.refusals < REFUSAL_LIMIT:
            return
        state = self.view.read_state()
        if state is not None and state.status.phase in (PROGRESSING, PROMOTING):
            self.refusals = 0
            self.roll_back(state, f"the cluster refused {error} ({REFUSAL_LIMIT} times in a row)")

    def settle(self, state: State, desired: str) -> None:
        """No rollout runs: record a pending outcome, then idle, stay blocked or start one."""
        status = state.status
        if status.outcome and not status.outcome.recorded:
            state = self.record_outcome(state)
        if desired == state.stable_version:
            self.idle(state)
            return
        rejected = state.status.rejected.get(desired) or self.registry.rejected(desired)
        if not rejected:
            rejected = self.same_files(state, desired, record=state.retry != desired)
        if rejected and state.retry != desired:
            self.hold_stable()
            self.say(
                f"v{desired} was rolled back in {self.environment} ({rejected}); it stays rolled back until a retry: "
                f"`make retry ENV={self.environment} VERSION={desired}` or annotate the record "
                f"{RETRY_ANNOTATION}={desired}",
                True,
            )
            return
        self.start(state, desired, retried=bool(rejected))

    def same_files(self, state: State, desired: str, record: bool) -> str | None:
        """Return why `desired` is rejected as a copy of a version rolled back here (same manifest digest), else None.

        With `record`, written as a rejection of `desired` itself, naming the earlier version: `make status`
        shows it and `make retry` clears it like any other.
        """
        digest = self.registry.digest(desired)
        earlier = state.status.rejected_as(digest, desired)
        if earlier is None:
            return None
        why = state.status.rejected.get(earlier) or "rolled back"
        reason = f"its files are those of v{earlier} (manifest {digest}), rolled back here: {why}"
        if record:
            state.status.reject(desired, reason)
            state.status.held = desired
            self.write(state)
        return reason

    def write(self, state: State, clear_retry: bool = False) -> State:
        """Write the record and keep the fresh resourceVersion."""
        state.status.last_transition = now_iso()
        return self.view.write_state(state, clear_retry)

    def initialize(self, state: State, desired: str) -> None:
        """No stable version on record: recover it from the stable Deployment, or serve the first desired one.

        A record that was deleted is recovered from the annotation the controller stamps on the stable's pod
        template (the stable keeps serving what it served). Only a stable that no controller ever rolled out
        takes the desired version without analysis, as Flagger initializes its primary: nothing serves that
        an analysis could compare against.
        """
        served = self.view.served_annotation()
        if served:
            state.stable_version = served
            state.status = RolloutStatus(
                rejected=state.status.rejected,
                rejected_digests=state.status.rejected_digests,
                message=f"record recovered: stable serves v{served}",
            )
            self.write(state)
            self.say(
                f"no record of what serves: recovered v{served} from the stable Deployment; a rollout that was in "
                "progress cannot be resumed without its record and starts again from weight 0"
            )
            self.return_to_stable()
            return
        state.stable_version = desired
        state.status = RolloutStatus(
            phase=PHASE_INITIALIZED, canary_version=desired, message=f"first version v{desired} serves without analysis"
        )
        state.status.outcome = Outcome(
            desired, INITIALIZED, "first version of this environment, nothing to compare with", now_iso()
        )
        state = self.write(state)
        self.say(
            f"initializing: the stable serves v{desired}, the first version of {self.environment}, without analysis"
        )
        self.view.serve_on_stable(desired)
        self.return_to_stable()
        self.view.event("Initialized", f"stable serves v{desired} (first version, no analysis)")
        self.record_outcome(state)

    def idle(self, state: State) -> None:
        """Desired is served: hold the route at 0 % canary and the canary at 0 pods, repairing any drift."""
        self.hold_stable()
        self.say(
            f"idle: the stable serves v{state.stable_version}, which is what {self.environment} should serve", True
        )

    def hold_stable(self) -> None:
        """No rollout runs: all traffic on the stable, no mirror, no canary pods (a reset or a blocked rollback)."""
        if self.view.route_weight() != 0:
            self.say("idle, but the route sends traffic to the canary: back to 0 %")
            self.view.set_weight(0)
        if self.view.route_mirror():
            self.say("idle, but the route mirrors to the canary: mirror removed")
            self.view.set_mirror(False)
        if self.view.canary_replicas() != 0:
            self.view.stop_canary()
        ROLLOUT_WEIGHT.labels(self.model_name).set(0)

    def start(self, state: State, desired: str, retried: bool) -> None:
        """Record a new rollout, start the canary, check it, then mirror to it (shadow) or send its first weight."""
        digest = self.registry.digest(desired)
        forgiven = RolloutStatus(
            rejected=dict(state.status.rejected), rejected_digests=dict(state.status.rejected_digests)
        )
        forgiven.forgive(desired, digest if retried else None)
        refused = self.registry.refusal(state.stable_version or "", desired)
        shadow = self.spec.shadow.enabled
        first = 0 if shadow else self.spec.steps[0]
        why = "retry requested" if retried else "new desired version"
        state.status = RolloutStatus(
            phase=PROGRESSING,
            canary_version=desired,
            stable_at_start=state.stable_version,
            weight=first,
            shadow=shadow,
            started_at=self.clock(),
            rejected=forgiven.rejected,
            rejected_digests=forgiven.rejected_digests,
            canary_digest=digest,
            message=f"{why}: v{desired} against stable v{state.stable_version}",
        )
        state = self.write(state, clear_retry=state.retry is not None)
        if refused:
            self.roll_back(state, f"refused before any traffic: {refused}")
            return
        self.begin_analysis(desired)
        self.recorder(desired).begin(state.stable_version)
        self.say(
            f"rollout of v{desired} started ({why}) against stable v{state.stable_version}: "
            f"steps {list(self.spec.steps)}"
        )
        self.view.event("RolloutStarted", f"v{desired} against stable v{state.stable_version} ({why})")
        self.view.start_canary()
        self.before_traffic(state)

    def before_traffic(self, state: State) -> None:
        """Once the canary's pods are ready, the pre-traffic check; until then, hold (the deadline bounds it)."""
        version = state.status.canary_version
        waiting = f"v{version}: waiting for the canary's pods to be ready"
        if not self.waits(state, self.view.canary_ready(), "the canary never became ready", waiting):
            self.first_traffic(state)

    def waits(self, state: State, readiness: Readiness, stuck: str, waiting: str) -> bool:
        """Whether a Deployment is not ready yet: one its controller says is stuck rolls back, else say `waiting`."""
        if readiness.stuck:
            self.roll_back(state, f"{stuck}: {readiness.stuck}")
            return True
        if not readiness.ready:
            self.say(waiting, True)
        return not readiness.ready

    def first_traffic(self, state: State) -> None:
        """Run the pre-traffic check (once per rollout, recorded), then open the shadow phase or the first step."""
        status = state.status
        version = status.canary_version or ""
        refused = self.pre_traffic(version) if self.pre_traffic else None
        if refused:
            self.roll_back(state, f"refused before any traffic: {refused}")
            return
        status.checked = True
        if status.shadow:
            status.shadow_since = self.clock()
            status.message = (
                f"shadow: the canary answers a mirror of live traffic for at least {self.spec.shadow.duration:g}s"
            )
        self.write(state)
        self.say(f"v{version} answered its reference rows as at registration: {status.message or 'traffic starts'}")
        self.apply_route(status)

    def apply_route(self, status: RolloutStatus) -> None:
        """Make the route what the record says: the mirror in the shadow phase, else the recorded weight."""
        if status.shadow:
            self.apply_weight(0)
            if not self.view.route_mirror():
                self.view.set_mirror(True)
            return
        if self.view.route_mirror():
            self.view.set_mirror(False)
        self.apply_weight(status.weight)

    def begin_analysis(self, version: str, status: RolloutStatus | None = None) -> None:
        """Start this process's analysis of `version`, carrying failure counts and baseline over from the record."""
        self.analysis = Analysis(self.spec, version, self.registry.has_profile(version))
        if status is not None:
            self.analysis.failures.update(status.failed_checks)
            self.analysis.baseline = Baseline.from_record(status.baseline)
        self.analysing = version
        self.source.start()

    def resume(self, state: State) -> None:
        """A rollout is on record but not in this process: take it over where the record says it stands."""
        status = state.status
        version = status.canary_version or ""
        live = self.view.route_weight()
        self.begin_analysis(version, status)
        status.resumed += 1
        where = (
            "the shadow phase" if status.shadow else f"{status.weight}% (step {status.step + 1}/{len(self.spec.steps)})"
        )
        status.message = f"resumed at {where} after a controller restart"
        state = self.write(state)
        status = state.status
        lag = "" if live == status.weight else f"; the route was at {live}%, re-applied {status.weight}%"
        self.say(
            f"resuming the rollout of v{version} at {'shadow' if status.shadow else f'{status.weight}%'}, "
            f"failed checks {status.failed_checks or 'none'} kept, "
            f"this step judged on fresh intervals only{lag}"
        )
        self.view.event("RolloutResumed", status.message + lag)
        self.view.start_canary()
        if status.checked:
            self.apply_route(status)
        else:
            self.before_traffic(state)

    def apply_weight(self, weight: int) -> None:
        """Set the route and the gauge."""
        self.view.set_weight(weight)
        ROLLOUT_WEIGHT.labels(self.model_name).set(weight)

    def analyse(self, state: State) -> None:
        """Judge one interval at the recorded step, then advance, hold or roll back."""
        status = state.status
        version = status.canary_version or ""
        if self.analysis is None or self.analysing != version:
            self.resume(state)
            return
        if not status.checked:
            self.before_traffic(state)
            return
        live, mirror = self.view.route_weight(), self.view.route_mirror()
        if live != status.weight or mirror != status.shadow:
            said = f"{live}%{' mirrored' if mirror else ''}"
            wanted = f"{status.weight}%{' mirrored' if status.shadow else ''}"
            self.say(
                f"the route sends {said} to the canary, not {wanted} (a re-apply?): "
                "re-applied, this interval not judged"
            )
            self.apply_route(status)
            return
        where = "shadow" if status.shadow else f"{status.weight}%"
        decisive = not status.shadow and status.weight >= self.spec.decisive_step
        verdict = self.analysis.judge(self.source.observe(self.spec.interval), status.shadow, decisive)
        status.iterations += 1
        status.failed_checks = dict(self.analysis.failures)
        status.baseline = self.analysis.baseline.to_record()
        self.say(judged(self.recorder(version), status.weight, verdict, where))
        early = status.shadow and self.clock() - status.shadow_since < self.spec.shadow.duration
        if verdict.action is Action.ROLLBACK:
            self.roll_back(state, verdict.reason)
        elif verdict.action is Action.HOLD or early:
            status.message = f"holding at {where}: {verdict.reason}"
            self.write(state)
        elif status.shadow:
            status.shadow, status.step, status.weight = False, 0, self.spec.steps[0]
            status.message = f"shadow passed; step 1/{len(self.spec.steps)}: {status.weight}%"
            self.write(state)
            self.apply_route(status)
            self.view.event("ShadowPassed", f"v{version} passed on mirrored traffic; {status.weight}% of live traffic")
        elif status.step + 1 < len(self.spec.steps):
            status.step += 1
            status.weight = self.spec.steps[status.step]
            status.message = f"step {status.step + 1}/{len(self.spec.steps)}: {status.weight}%"
            self.write(state)
            self.apply_weight(status.weight)
            self.view.event("CanaryWeight", f"v{version} advanced to {status.weight}%")
        else:
            status.phase, status.promoting_since = PROMOTING, self.clock()
            status.message = f"all {len(self.spec.steps)} steps passed analysis; the stable takes v{version}"
            self.promote(self.write(state))

    def promote(self, state: State) -> None:
        """Make the stable serve the canary's version, then take the canary out; idempotent when resumed.

        The canary keeps its traffic until the stable's new pods are all available; a stable that never gets
        there is rolled back at the deadline (or at once, when its Deployment says it is stuck).
        """
        status = state.status
        version = status.canary_version or ""
        if state.stable_version != version or not status.promoting_since:
            state.stable_version = version
            status.promoting_since = status.promoting_since or self.clock()
            state = self.write(state)
            status = state.status
        self.view.serve_on_stable(version)
        waiting = f"promoting v{version}: waiting for the stable's pods to load it"
        if self.waits(state, self.view.stable_ready(), f"the stable did not roll out v{version}", waiting):
            return
        self.return_to_stable()
        reason = f"all {len(self.spec.steps)} steps passed analysis"
        self.finish(state, SUCCEEDED, PROMOTED, reason)
        self.say(f"PROMOTED: the stable serves v{version}, canary at 0% ({reason})")
        self.view.event("Promoted", f"the stable serves v{version}; canary scaled to 0")

    def roll_back(self, state: State, reason: str) -> None:
        """Weight 0, canary stopped, the stable on what it served before, the version rejected here.

        A rollback the cluster refuses to carry out is still recorded (the version stays rejected, the idle loop
        keeps repairing the route) and said as BLOCKED, with the refusal.
        """
        status = state.status
        version = status.canary_version or ""
        reverted = status.phase == PROMOTING and status.stable_at_start not in (None, state.stable_version)
        if reverted:
            state.stable_version = status.stable_at_start
        blocked = self.carry_out(self.return_to_stable)
        status.reject(version, reason, status.canary_digest)
        self.finish(state, FAILED, ROLLED_BACK, reason if blocked is None else f"{reason}; BLOCKED: {blocked}")
        if reverted and blocked is None:
            blocked = self.carry_out(lambda: self.view.serve_on_stable(state.stable_version or ""))
        if blocked:
            self.say(f"BLOCKED: v{version} rolled back on record, but the cluster refused {blocked} - {reason}")
            self.view.event("RolloutBlocked", f"v{version}: {reason}; the cluster refused {blocked}", warning=True)
            return
        self.say(
            f"ROLLED BACK v{version}: canary weight 0, canary stopped, "
            f"the stable still serves v{state.stable_version} - {reason}"
        )
        self.view.event("RolledBack", f"v{version}: {reason}", warning=True)

    def carry_out(self, action: Callable[[], None]) -> ClusterRefusal | None:
        """Run a cluster action; return the refusal that stopped it (counted), None when it went through."""
        try:
            action()
        except ClusterRefusal as error:
            ROLLOUT_REFUSALS.labels(str(error.status)).inc()
            return error
        return None

    def cancel(self, state: State, desired: str) -> None:
        """Git no longer wants the version under analysis: stop it without judging it."""
        version = state.status.canary_version or ""
        reason = f"desired version changed to v{desired} during the analysis"
        self.return_to_stable()
        self.finish(state, PHASE_CANCELED, CANCELED, reason)
        self.say(f"CANCELED the rollout of v{version}: {reason}; canary weight 0, canary stopped")
        self.view.event("RolloutCanceled", f"v{version}: {reason}")

    def return_to_stable(self) -> None:
        """All traffic on the stable, no mirror, canary scaled to 0."""
        self.apply_weight(0)
        if self.view.route_mirror():
            self.view.set_mirror(False)
        self.view.stop_canary()

    def finish(self, state: State, phase: str, outcome: str, reason: str) -> None:
        """Record the end of a rollout, then write it to the registry (retried on later ticks if it is down)."""
        status = state.status
        status.phase, status.weight, status.shadow, status.message = phase, 0, False, reason
        status.outcome = Outcome(status.canary_version or "", outcome, reason, now_iso())
        self.analysis, self.analysing = None, None
        ROLLOUT_DECISIONS.labels(outcome).inc()
        self.record_outcome(self.write(state))

    def record_outcome(self, state: State) -> State:
        """Write the outcome to MLflow (tags; aliases after a promotion) and mark it recorded."""
        outcome = state.status.outcome
        if outcome is None or outcome.recorded:
            return state
        recorder = self.recorder(outcome.version)
        try:
            if outcome.status in (PROMOTED, INITIALIZED):
                recorder.move_serving(champion_too=outcome.status == PROMOTED)
            recorded = recorder.finish(outcome.status, outcome.reason)
        except Exception as error:  # the registry is down: the cluster already acted, record it later
            recorded = False
            LOG.warning("registry write failed: %s", first_line(error))
        if not recorded:
            self.say(f"the registry did not record v{outcome.version} {outcome.status}; retrying next interval", True)
            return state
        outcome.recorded = True
        self.recorders.pop(outcome.version, None)
        return self.write(state)

    def recorder(self, version: str) -> RolloutRecorder:
        """Return the recorder of `version` (one per rollout, so its history accumulates)."""
        if version not in self.recorders:
            self.recorders[version] = self.registry.recorder(version)
        return self.recorders[version]
