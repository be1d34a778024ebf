"""Cluster edge: the canary's weight lives in a Gateway API HTTPRoute; the canary is a Deployment.

Weights are set by a JSON merge patch of the route's rules carrying the resourceVersion read just before,
so a concurrent edit makes the API answer 409 and the patch is redone on the fresh object instead of
silently overwriting it. Every change is also an Event on the HTTPRoute (`kubectl describe httproute`).
"""

from __future__ import annotations

import copy
import logging
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

LOG = logging.getLogger("plinth.rollout")
GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
RESTART_ANNOTATION = "plinth.dev/restartedAt"
COMPONENT = "plinth-rollout"
POLL_S = 2.0
# A Deployment that has not rolled out in this long (image pull, model download, probes) is stuck.
READY_TIMEOUT_S = 600.0


class RouteError(RuntimeError):
    """The HTTPRoute does not reference the stable and canary Services; the message says which."""


def reweigh(rules: list[dict[str, Any]], stable: str, canary: str, weight: int) -> list[dict[str, Any]]:
    """Return the rules with canary backends at `weight` and stable backends at 100 - `weight`."""
    updated, found = copy.deepcopy(rules), set()
    for rule in updated:
        for ref in rule.get("backendRefs", []):
            if ref.get("name") in (stable, canary):
                ref["weight"] = weight if ref["name"] == canary else 100 - weight
                found.add(ref["name"])
    missing = {stable, canary} - found
    if missing:
        raise RouteError(f"HTTPRoute has no backendRef for Service(s) {', '.join(sorted(missing))}")
    return updated


class ClusterEdge:
    """Traffic edge on a cluster: HTTPRoute weights, canary Deployment scale, stable restart."""

    def __init__(
        self,
        api: ApiClient,
        namespace: str,
        httproute: str,
        stable_service: str,
        canary_service: str,
        canary_deployment: str,
        stable_deployment: str,
        ready_timeout: float = READY_TIMEOUT_S,
        poll: float = POLL_S,
    ) -> None:
        self.custom, self.apps, self.core = CustomObjectsApi(api), AppsV1Api(api), CoreV1Api(api)
        self.namespace, self.httproute = namespace, httproute
        self.stable_service, self.canary_service = stable_service, canary_service
        self.canary_deployment, self.stable_deployment = canary_deployment, stable_deployment
        self.ready_timeout, self.poll = ready_timeout, poll

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        """Emit an Event on the HTTPRoute; a failure to emit is logged, never fatal."""
        now = datetime.now(UTC)
        body = {
            "metadata": {"generateName": f"{self.httproute}."},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "HTTPRoute",
                "name": self.httproute,
                "namespace": self.namespace,
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
            "source": {"component": COMPONENT},
        }
        try:
            self.core.create_namespaced_event(self.namespace, body)
        except ApiException as error:
            LOG.warning("could not emit event %s: %s %s", reason, error.status, error.reason)

    def set_weight(self, weight: int) -> None:
        """Patch the route's backend weights (retrying once on a conflicting concurrent edit)."""
        for attempt in range(2):
            route = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.httproute)
            rules = reweigh(route["spec"]["rules"], self.stable_service, self.canary_service, weight)
            patch = {
                "metadata": {"resourceVersion": route["metadata"]["resourceVersion"]},
                "spec": {"rules": rules},
            }
            try:
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, self.httproute, patch
                )
                break
            except ApiException as error:
                if error.status != 409 or attempt:
                    raise
        self.event(
            "CanaryWeight",
            f"canary {self.canary_service} at {weight}%, stable {self.stable_service} at {100 - weight}%",
        )

    def scale_canary(self, replicas: int) -> None:
        """Scale the canary Deployment."""
        self.apps.patch_namespaced_deployment_scale(
            self.canary_deployment, self.namespace, {"spec": {"replicas": replicas}}
        )

    def wait_rolled_out(self, name: str) -> None:
        """Poll a Deployment until its current generation is fully updated and available."""
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            deployment = self.apps.read_namespaced_deployment_status(name, self.namespace)
            status, wanted = deployment.status, deployment.spec.replicas or 0
            if (
                (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
                and (status.updated_replicas or 0) >= wanted
                and (status.available_replicas or 0) >= wanted
                and (status.replicas or 0) == wanted
            ):
                return
            time.sleep(self.poll)
        raise TimeoutError(f"Deployment {name} not rolled out after {self.ready_timeout:.0f}s")

    def prepare(self, replicas: int = 1) -> None:
        """Start the canary at weight 0 and wait until it is ready."""
        self.set_weight(0)
        self.scale_canary(replicas)
        self.wait_rolled_out(self.canary_deployment)

    def promote(self) -> None:
        """Restart the stable (it loads the moved `champion` alias), then canary weight 0 and scale 0."""
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: stamp}}}}}
        self.apps.patch_namespaced_deployment(self.stable_deployment, self.namespace, patch)
        self.wait_rolled_out(self.stable_deployment)
        self.set_weight(0)
        self.scale_canary(0)
        self.event("Promoted", f"stable {self.stable_deployment} restarted on the new champion; canary scaled to 0")

    def rollback(self) -> None:
        """Canary weight 0 and scale 0; the stable is untouched."""
        self.set_weight(0)
        self.scale_canary(0)
        self.event(
            "RolledBack",
            f"canary {self.canary_deployment} scaled to 0, all traffic on the stable",
            warning=True,
        )
