"""Defaulting as the API server does it before admission: CRD structural-schema defaults and core defaults.

A CRD's `default:` values are applied by the API server while decoding every write (create, update, each
patch type), so admission policies and the object stored see them: every HTTPRoute `backendRef`, the
RequestMirror filter's `requestMirror.backendRef` included, gains `group: ""` and `kind: Service`. The
vendored Gateway API v1.2.1 subset (tests/k8s/schemas) carries those leaf defaults; the list and object
defaults it leaves out (`spec.rules`, `rules[].matches`, `matches[].path`) and the header-modifier filters'
objects are added here from the CRD as published (config/crd/standard/gateway.networking.k8s.io_httproutes.yaml).
Core kinds get the Go `SetDefaults_*` values that a Deployment's rendering and the admission policy see.
"""

from __future__ import annotations

import copy
from typing import Any

ROOT_MATCH = {"path": {"type": "PathPrefix", "value": "/"}}
HEADERS = {
    "items": {
        "additionalProperties": False,
        "properties": {
            "name": {
                "maxLength": 256,
                "minLength": 1,
                "pattern": "^[A-Za-z0-9!#$%&'*+\\-.^_\\x60|~]+$",
                "type": "string",
            },
            "value": {"maxLength": 4096, "minLength": 1, "type": "string"},
        },
        "required": ["name", "value"],
        "type": "object",
    },
    "maxItems": 16,
    "type": "array",
}
HEADER_FILTER = {
    "additionalProperties": False,
    "properties": {
        "add": HEADERS,
        "set": HEADERS,
        "remove": {"items": {"type": "string"}, "maxItems": 16, "type": "array"},
    },
    "type": "object",
}


def supplemented(kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The vendored CRD schema with the published parts the subset lacks (HTTPRoute only)."""
    if kind != "HTTPRoute":
        return schema
    schema = copy.deepcopy(schema)
    rules = schema["properties"]["spec"]["properties"]["rules"]
    rules["default"] = [{"matches": [copy.deepcopy(ROOT_MATCH)]}]
    rule = rules["items"]["properties"]
    rule["matches"]["default"] = [copy.deepcopy(ROOT_MATCH)]
    rule["matches"]["items"]["properties"]["path"]["default"] = copy.deepcopy(ROOT_MATCH["path"])
    filters = rule["filters"]["items"]["properties"]
    filters["requestHeaderModifier"] = copy.deepcopy(HEADER_FILTER)
    filters["responseHeaderModifier"] = copy.deepcopy(HEADER_FILTER)
    return schema


def structural(value: Any, schema: dict[str, Any]) -> None:
    """Apply a structural schema's defaults in place, as apiextensions' defaulting algorithm does.

    For an object, every absent property with a default gets a copy of it; then each present property (the
    defaulted ones too) is defaulted by its own schema; list items by the items' schema.
    """
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, prop in properties.items():
            if "default" in prop and key not in value:
                value[key] = copy.deepcopy(prop["default"])
        for key, item in value.items():
            if key in properties:
                structural(item, properties[key])
            elif isinstance(schema.get("additionalProperties"), dict):
                structural(item, schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            structural(item, schema["items"])


def image_pull_policy(image: str) -> str:
    """`Always` for an image tagged `:latest` or not tagged at all (and not pinned by digest), else IfNotPresent."""
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return "IfNotPresent"
    tag = name.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def probe(found: dict[str, Any] | None) -> None:
    if not found:
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)):
        found.setdefault(key, value)
    if "httpGet" in found:
        found["httpGet"].setdefault("scheme", "HTTP")


def container(found: dict[str, Any]) -> None:
    """SetDefaults_Container and its parts: pull policy, termination message, port protocol, probes."""
    found.setdefault("imagePullPolicy", image_pull_policy(found.get("image") or ""))
    found.setdefault("terminationMessagePath", "/dev/termination-log")
    found.setdefault("terminationMessagePolicy", "File")
    found.setdefault("resources", {})
    for port in found.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for item in found.get("env") or []:
        field = (item.get("valueFrom") or {}).get("fieldRef")
        if field is not None:
            field.setdefault("apiVersion", "v1")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe(found.get(key))


def pod_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_PodSpec: restart and DNS policy, grace period, scheduler, security context, volume modes."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for found in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        container(found)
    for volume in spec.get("volumes") or []:
        for kind in ("configMap", "secret", "projected", "downwardAPI"):
            if kind in volume:
                volume[kind].setdefault("defaultMode", 420)


def deployment(obj: dict[str, Any]) -> None:
    """SetDefaults_Deployment (apps/v1) and the pod template's defaults."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    template = spec.setdefault("template", {})
    pod_spec(template.setdefault("spec", {}))


def apply_defaults(kind: str, obj: dict[str, Any], schema: dict[str, Any] | None) -> None:
    """Default one object in place: by its structural schema for a CRD, by the Go defaults for core kinds."""
    if schema is not None:
        structural(obj, schema)
    elif kind == "Deployment":
        deployment(obj)
