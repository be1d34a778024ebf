"""The kinds the stand-in serves and where their schemas come from.

The controller's kinds (HTTPRoute, Deployment with /status and /scale, ConfigMap, Event) keep their own
constants; around them is every kind of the core, apps, batch, policy, autoscaling, networking, rbac and
admissionregistration groups that a chart or overlay carries, validated against the Kubernetes OpenAPI
schemas, and the CRDs the chart uses (schemas vendored in tests/k8s/schemas). Anything else answers 404 as
an API server without that resource would, and discovery (`http.py`) does not list it, so kubectl says
`the server doesn't have a resource type`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    """One REST resource: group/version/plural, its kind, and its CRD schema file (None: a built-in kind)."""

    group: str
    version: str
    plural: str
    kind: str
    crd_schema: str | None = None
    subresources: tuple[str, ...] = ()
    namespaced: bool = True
    short_names: tuple[str, ...] = ()

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
DEPLOYMENT = Resource(
    "apps", "v1", "deployments", "Deployment", subresources=("status", "scale"), short_names=("deploy",)
)
CONFIGMAP = Resource("", "v1", "configmaps", "ConfigMap", short_names=("cm",))
EVENT = Resource("", "v1", "events", "Event", short_names=("ev",))
NAMESPACE = Resource(
    "", "v1", "namespaces", "Namespace", subresources=("status",), namespaced=False, short_names=("ns",)
)

# Built-in kinds: (group, version, kind, namespaced, subresources, short names).
BUILT_IN: list[tuple[str, str, str, bool, tuple[str, ...], tuple[str, ...]]] = [
    ("", "v1", "Service", True, ("status",), ("svc",)),
    ("", "v1", "ServiceAccount", True, (), ("sa",)),
    ("", "v1", "Secret", True, (), ()),
    ("", "v1", "Pod", True, ("status",), ("po",)),
    ("", "v1", "PersistentVolumeClaim", True, ("status",), ("pvc",)),
    ("", "v1", "LimitRange", True, (), ("limits",)),
    ("", "v1", "ResourceQuota", True, ("status",), ("quota",)),
    ("apps", "v1", "StatefulSet", True, ("status",), ("sts",)),
    ("apps", "v1", "DaemonSet", True, ("status",), ("ds",)),
    ("batch", "v1", "Job", True, ("status",), ()),
    ("batch", "v1", "CronJob", True, ("status",), ("cj",)),
    ("policy", "v1", "PodDisruptionBudget", True, ("status",), ("pdb",)),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", True, ("status",), ("hpa",)),
    ("networking.k8s.io", "v1", "NetworkPolicy", True, (), ("netpol",)),
    ("networking.k8s.io", "v1", "Ingress", True, ("status",), ("ing",)),
    ("networking.k8s.io", "v1", "IngressClass", False, (), ()),
    ("rbac.authorization.k8s.io", "v1", "Role", True, (), ()),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", True, (), ()),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", False, (), ()),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", False, (), ()),
    ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", False, ("status",), ()),
    ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", False, (), ()),
]
# The CRDs the chart uses: (group, version, kind, schema file), all namespaced, with a status subresource.
CRDS = [
    (
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
        "servicemonitor-monitoring.coreos.com-v1-prometheus-operator-v0.84.1.json",
    ),
    (
        "monitoring.coreos.com",
        "v1",
        "PrometheusRule",
        "prometheusrule-monitoring.coreos.com-v1-prometheus-operator-v0.82.2.json",
    ),
    (
        "monitoring.coreos.com",
        "v1alpha1",
        "AlertmanagerConfig",
        "alertmanagerconfig-monitoring.coreos.com-v1alpha1-crds-catalog.json",
    ),
]


def plural(kind: str) -> str:
    """The REST plural the API server derives: `networkpolicies`, `ingressclasses`, `services`."""
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith("s") else "s")


RESOURCES = {
    (r.group, r.plural): r
    for r in (
        HTTPROUTE,
        DEPLOYMENT,
        CONFIGMAP,
        EVENT,
        NAMESPACE,
        *(Resource(g, v, plural(k), k, None, sub, ns, short) for g, v, k, ns, sub, short in BUILT_IN),
        *(Resource(g, v, plural(k), k, schema) for g, v, k, schema in CRDS),
    )
}
BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES.values()}
