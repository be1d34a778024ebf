"""The kinds the stand-in serves and where their schemas come from.

Only what the rollout controller and its tests touch is served: an unknown path answers 404 as an API
server without that resource would, so a new kind of call fails loudly until it is added here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    """One REST resource: group/version/plural, its kind, and its CRD schema file (None: a core kind)."""

    group: str
    version: str
    plural: str
    kind: str
    crd_schema: str | None = None
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """`apps/v1`, or `v1` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`deployments.apps`, or `configmaps` for the core group (what error messages say)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def is_crd(self) -> bool:
        """Whether it is a custom resource (no strategic merge patch, structural-schema defaults)."""
        return self.crd_schema is not None


HTTPROUTE = Resource(
    "gateway.networking.k8s.io",
    "v1",
    "httproutes",
    "HTTPRoute",
    "httproute-gateway.networking.k8s.io-v1-gateway-api-v1.2.1.json",
    ("status",),
)
DEPLOYMENT = Resource("apps", "v1", "deployments", "Deployment", subresources=("status", "scale"))
CONFIGMAP = Resource("", "v1", "configmaps", "ConfigMap")
EVENT = Resource("", "v1", "events", "Event")
RESOURCES = {(r.group, r.plural): r for r in (HTTPROUTE, DEPLOYMENT, CONFIGMAP, EVENT)}
BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES.values()}
