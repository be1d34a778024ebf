"""The stand-in's knobs: what a test turns to make the cluster refuse, fail, stall or change behind a client.

Each is one small method on `ApiServer` (this mixin): refusals by verb/resource/name/subresource with a chosen
status, an unreachable API server, an object deleted or rewritten by somebody else, Deployments whose pods never
become ready or become ready slowly, and the stand-in's clock, on which progress deadlines are measured.
"""

from __future__ import annotations

from tests.apiserver.faults import Faults, Refusal
from tests.apiserver.resources import DEPLOYMENT, RESOURCES
from tests.apiserver.store import Clock, Store
from tests.apiserver.workloads import Workloads


class Knobs:
    """Fault and workload knobs over the server's store, workloads and faults."""

    user: str
    clock: Clock
    store: Store
    workloads: Workloads
    faults: Faults

    def deny(
        self,
        verb: str | None = None,
        resource: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        code: int = 403,
        message: str | None = None,
        times: int | None = None,
    ) -> None:
        """Refuse matching requests (None matches anything) with `code`, `times` times (None: until cleared)."""
        self.faults.refuse(Refusal(verb, resource, name, subresource, code, message, times))

    def clear_denials(self) -> None:
        """Forget every refusal still in force."""
        self.faults.refusals.clear()

    def unreachable(self, requests: int) -> None:
        """The next `requests` requests fail to connect (urllib3's MaxRetryError, as with a down API server)."""
        self.faults.unreachable = requests

    def remove(self, plural: str, namespace: str, name: str) -> None:
        """Delete an object behind everyone's back (it then answers 404)."""
        resource = next(r for r in RESOURCES.values() if r.plural == plural)
        self.store.remove(resource, namespace, name)

    def touch(self, plural: str, namespace: str, name: str) -> None:
        """Somebody else writes the object: a new resourceVersion, so a precondition on the old one fails."""
        self.store.touch(next(r for r in RESOURCES.values() if r.plural == plural), namespace, name)

    def never_ready(self, namespace: str, name: str) -> None:
        """Pods the Deployment starts from now on never become available."""
        self.workloads.never.add((namespace, name))

    def roll_slowly(self, namespace: str, name: str, reads_per_pod: int) -> None:
        """Pods the Deployment starts become available one per `reads_per_pod` reads of it."""
        self.workloads.slow[(namespace, name)] = reads_per_pod

    def ready_now(self, namespace: str, name: str) -> None:
        """Undo never_ready/roll_slowly: the Deployment's pods all become available."""
        self.workloads.never.discard((namespace, name))
        self.workloads.slow.pop((namespace, name), None)
        self.settle(namespace, name)

    def advance_rollout(self, namespace: str, name: str, pods: int = 1) -> None:
        """`pods` more of the Deployment's new pods become available."""
        if self.workloads.advance(self.store.get(DEPLOYMENT, namespace, name), pods):
            self.store.touch(DEPLOYMENT, namespace, name)

    def advance(self, seconds: float) -> None:
        """Let stand-in time pass (progress deadlines are measured on it)."""
        self.clock.advance(seconds)
        for namespace, name in list(self.workloads.progress):
            self.settle(namespace, name)

    def settle(self, namespace: str, name: str) -> None:
        if self.workloads.settle(self.store.get(DEPLOYMENT, namespace, name)):
            self.store.touch(DEPLOYMENT, namespace, name)
