"""The Deployment controller and the kubelet, played: pods start, resolve their model, and become ready.

A Deployment whose pod template changes, or which scales up from zero, starts pods; each resolves its model
version from its `serving` container's env exactly as the chart wires it (a literal PLINTH_MODEL_VERSION, or a
configMapKeyRef into the controller's record read when the pod starts, else `alias:<PLINTH_MODEL_ALIAS>`).
Readiness is told through status as the Deployment controller tells it (observedGeneration, updated, ready and
available replicas, the Available and Progressing conditions), and by default a rollout completes within
the write. Knobs: pods that never become ready (Progressing turns False with ProgressDeadlineExceeded once
progressDeadlineSeconds of stand-in time pass), and pods that become ready one per N reads of the
Deployment, or when the test says so.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from tests.apiserver.resources import CONFIGMAP
from tests.apiserver.store import Store

Key = tuple[str, str]


@dataclass
class Rollout:
    """New pods started at `started` (stand-in seconds), `ready` of them available so far."""

    started: float
    ready: int = 0
    reads: int = 0


class Workloads:
    """What runs: the model each Deployment's pods loaded, how often each rolled, rollouts in progress."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.serving: dict[str, str | None] = {}
        self.rollouts: dict[str, int] = {}
        self.progress: dict[Key, Rollout] = {}
        self.never: set[Key] = set()
        self.slow: dict[Key, int] = {}

    def resolve(self, deployment: dict[str, Any]) -> str | None:
        """The model a new pod of `deployment` loads: its PLINTH_MODEL_VERSION, else `alias:<alias>`."""
        if not deployment["spec"].get("replicas"):
            return None
        containers = deployment["spec"]["template"]["spec"]["containers"]
        container = next((c for c in containers if c["name"] == "serving"), containers[0])
        values = {item["name"]: item for item in container.get("env") or []}
        version = values.get("PLINTH_MODEL_VERSION", {})
        if "value" in version:
            return str(version["value"])
        ref = (version.get("valueFrom") or {}).get("configMapKeyRef")
        if ref:
            record = self.store.find(CONFIGMAP, deployment["metadata"]["namespace"], ref["name"]) or {}
            found = (record.get("data") or {}).get(ref["key"])
            if found:
                return str(found)
        alias = values.get("PLINTH_MODEL_ALIAS", {}).get("value")
        return f"alias:{alias}" if alias else None

    def restart_pods(self, deployment: dict[str, Any]) -> None:
        """Every pod replaced: the new ones resolve their model again (and start unready)."""
        meta = deployment["metadata"]
        self.serving[meta["name"]] = self.resolve(deployment)
        if deployment["spec"].get("replicas"):
            self.progress[(meta["namespace"], meta["name"])] = Rollout(self.store.clock.now)

    def written(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """A Deployment was written (spec or scale): start pods where the template changed or replicas left 0."""
        name = new["metadata"]["name"]
        self.rollouts.setdefault(name, 0)
        template_changed = old is not None and old["spec"]["template"] != new["spec"]["template"]
        if template_changed:
            self.rollouts[name] += 1
        was, now = (old or {}).get("spec", {}).get("replicas", 0), new["spec"].get("replicas", 0)
        if old is None or template_changed or bool(was) != bool(now):
            self.restart_pods(new)
        self.settle(new)

    def read(self, deployment: dict[str, Any]) -> bool:
        """A read of the Deployment: a slow rollout gains a ready pod every N reads. Return whether status moved."""
        key = (deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        rollout = self.progress.get(key)
        if rollout is None:
            return False  # nothing in progress: the status stands as last written
        if key in self.slow:
            rollout.reads += 1
            if rollout.reads % self.slow[key] == 0:
                rollout.ready += 1
        return self.settle(deployment)

    def advance(self, deployment: dict[str, Any], pods: int) -> bool:
        """`pods` more new pods become ready (a test moving a slow rollout by hand)."""
        rollout = self.progress.get((deployment["metadata"]["namespace"], deployment["metadata"]["name"]))
        if rollout is not None:
            rollout.ready += pods
        return self.settle(deployment)

    def settle(self, deployment: dict[str, Any]) -> bool:
        """Write the status the Deployment controller would report now; return whether it changed."""
        meta, spec = deployment["metadata"], deployment["spec"]
        key, wanted = (meta["namespace"], meta["name"]), spec.get("replicas", 1)
        rollout = self.progress.get(key)
        if rollout is None or (key not in self.never and key not in self.slow):
            ready = wanted
        else:
            ready = 0 if key in self.never else min(wanted, rollout.ready)
        if ready >= wanted:
            self.progress.pop(key, None)
        before = copy.deepcopy(deployment.get("status"))
        deployment["status"] = self.status(deployment, ready, rollout, before or {})
        return deployment["status"] != before

    def status(
        self, deployment: dict[str, Any], ready: int, rollout: Rollout | None, before: dict[str, Any]
    ) -> dict[str, Any]:
        spec, wanted = deployment["spec"], deployment["spec"].get("replicas", 1)
        unavailable = (
            int(wanted * 0.25)
            if isinstance(spec.get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable"), str)
            else 0
        )
        if ready >= wanted:
            progressing = ("True", "NewReplicaSetAvailable", "has successfully progressed.")
        elif rollout is not None and self.store.clock.now - rollout.started > spec.get("progressDeadlineSeconds", 600):
            progressing = ("False", "ProgressDeadlineExceeded", "has timed out progressing.")
        else:
            progressing = ("True", "ReplicaSetUpdated", "is progressing.")
        available = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        if ready < wanted - unavailable:
            available = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        name = deployment["metadata"]["name"]
        conditions = [
            self.condition(before, "Available", *available),
            self.condition(
                before, "Progressing", progressing[0], progressing[1], f'ReplicaSet "{name}" {progressing[2]}'
            ),
        ]
        counts = {"replicas": wanted, "updatedReplicas": wanted, "readyReplicas": ready, "availableReplicas": ready}
        counts["unavailableReplicas"] = wanted - ready
        status: dict[str, Any] = {"observedGeneration": deployment["metadata"].get("generation", 1)}
        status.update({k: v for k, v in counts.items() if v})  # zero counts are omitted, as the API server does
        status["conditions"] = conditions
        return status

    def condition(self, before: dict[str, Any], kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        """A condition, keeping its transition time while its status and reason stay the same."""
        now = self.store.clock.stamp()
        old = next((c for c in before.get("conditions") or [] if c.get("type") == kind), None)
        if old is not None and (old["status"], old["reason"]) == (status, reason):
            return old
        found = {"type": kind, "status": status, "reason": reason, "message": message}
        return {**found, "lastUpdateTime": now, "lastTransitionTime": now}
