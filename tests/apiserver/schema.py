"""Validation of every write against the schemas the real API server holds, and the schema walk patches need.

Custom resources are checked against the vendored CRD schemas of tests/k8s/schemas (with the parts that subset
leaves out but the controller's objects use, see `defaults.HTTPROUTE_SUPPLEMENT`), core kinds against the
Kubernetes 1.33 OpenAPI schemas that `kubernetes-validate` ships. On top of the schemas come the few checks
the API server's Go validation makes that a schema cannot say and that the controller's objects can break:
object names, a Deployment's selector matching its template and being immutable, container images, a
Service backendRef's port, a ConfigMap's 1 MiB. Every failure is a cause as the API server words it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry
from referencing import Resource as Schema

from tests.apiserver.defaults import supplemented
from tests.apiserver.errors import MAX_OBJECT_BYTES
from tests.apiserver.resources import Resource

CRD_SCHEMAS = Path(__file__).resolve().parents[1] / "k8s" / "schemas"
CORE_SCHEMAS = Path(kubernetes_validate.__file__).resolve().parent / "kubernetes-json-schema" / "v1.33.0-local-strict"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@cache
def definitions() -> dict[str, Any]:
    """The Kubernetes OpenAPI definitions by name (`io.k8s.api.apps.v1.DeploymentSpec`)."""
    found: dict[str, Any] = json.loads((CORE_SCHEMAS / "_definitions.json").read_text())
    return found


@cache
def root(resource: Resource) -> dict[str, Any]:
    """The JSON schema of one kind's whole object."""
    if resource.crd_schema:
        return supplemented(resource.kind, json.loads((CRD_SCHEMAS / resource.crd_schema).read_text()))
    group = resource.group.split(".")[0]
    name = f"{resource.kind.lower()}-{group + '-' if group else ''}{resource.version}.json"
    found: dict[str, Any] = json.loads((CORE_SCHEMAS / name).read_text())
    return found


@cache
def validator(resource: Resource) -> jsonschema.protocols.Validator:
    """A cached validator: Draft 7 for the vendored CRD schemas, 2020-12 with the definitions for core kinds."""
    schema = root(resource)
    if resource.is_crd:
        return jsonschema.Draft7Validator(schema)
    registry: Registry[Any] = Schema.from_contents(definitions()) @ Registry()
    registry = Schema.from_contents(schema) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def resolve(node: dict[str, Any] | None) -> dict[str, Any]:
    """Follow a `$ref` into the definitions (the node's own keys, such as list markers, kept)."""
    if not node:
        return {}
    while "$ref" in node:
        target = definitions()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def child(node: dict[str, Any], key: str) -> dict[str, Any]:
    """The schema of a map's field, or of a list's items when `key` is `[]`."""
    node = resolve(node)
    if key == "[]":
        return resolve(node.get("items"))
    found = node.get("properties", {}).get(key)
    if found is None and isinstance(node.get("additionalProperties"), dict):
        found = node["additionalProperties"]
    return resolve(found)


def list_shape(node: dict[str, Any], crd: bool) -> tuple[str, list[str]]:
    """A list's type for apply ("map" with its keys, "set" or "atomic") as its schema marks it.

    Core lists carrying only a patch merge key are maps on that key (the API server derives the same); CRD
    lists without markers are atomic.
    """
    node = resolve(node)
    kind = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys") or []
    if kind is None and not crd and node.get("x-kubernetes-patch-merge-key"):
        kind, keys = "map", [node["x-kubernetes-patch-merge-key"]]
    return kind or "atomic", list(keys)


def field_path(parts: Any) -> str:
    """`spec.template.spec.containers[0].image`, as the API server names a field."""
    said = ""
    for part in parts:
        said += f"[{part}]" if isinstance(part, int) else (f".{part}" if said else str(part))
    return said


def cause(error: jsonschema.ValidationError) -> dict[str, str]:
    """One jsonschema error as the API server's StatusCause (reason, message, field)."""
    where = field_path(error.absolute_path)
    if error.validator == "required":
        missing = re.findall(r"'([^']*)' is a required property", error.message)[0]
        return {
            "reason": "FieldValueRequired",
            "message": "Required value",
            "field": field_path([*error.absolute_path, missing]),
        }
    if error.validator == "additionalProperties":
        extra = re.findall(r"'([^']*)'", error.message)[0]
        return {
            "reason": "FieldValueInvalid",
            "message": "field not declared in schema",
            "field": field_path([*error.absolute_path, extra]),
        }
    value = json.dumps(error.instance)
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        listed = ", ".join(json.dumps(a) for a in allowed)
        return {
            "reason": "FieldValueNotSupported",
            "message": f"Unsupported value: {value}: supported values: {listed}",
            "field": where,
        }
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, str) else error.validator_value[0]
        return {
            "reason": "FieldValueTypeInvalid",
            "message": f"Invalid value: {value}: must be of type {wanted}",
            "field": where,
        }
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {value}: {error.message}", "field": where}


def validate(resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    """Every cause the API server would give for storing `obj` (over `old` on an update); empty: valid."""
    causes = [cause(e) for e in sorted(validator(resource).iter_errors(obj), key=lambda e: list(e.absolute_path))]
    name = obj.get("metadata", {}).get("name", "")
    if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        message = (
            f"Invalid value: {json.dumps(name)}: a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.'"
        )
        causes.append({"reason": "FieldValueInvalid", "message": message, "field": "metadata.name"})
    checks = {"Deployment": deployment_causes, "HTTPRoute": route_causes, "ConfigMap": configmap_causes}
    if not causes and resource.kind in checks:
        causes += checks[resource.kind](obj, old)
    return causes


def required(field: str) -> dict[str, str]:
    return {"reason": "FieldValueRequired", "message": "Required value", "field": field}


def deployment_causes(obj: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    """apps/v1 validation beyond the schema: selector vs template labels, immutable selector, images, replicas."""
    spec, causes = obj["spec"], []
    labels = spec["template"].get("metadata", {}).get("labels") or {}
    wanted = (spec.get("selector") or {}).get("matchLabels") or {}
    if not wanted and not (spec.get("selector") or {}).get("matchExpressions"):
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: {}: empty selector is invalid for deployment",
                "field": "spec.selector",
            }
        )
    elif any(labels.get(k) != v for k, v in wanted.items()):
        message = f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`"
        causes.append({"reason": "FieldValueInvalid", "message": message, "field": "spec.template.metadata.labels"})
    if old is not None and old["spec"].get("selector") != spec.get("selector"):
        message = f"Invalid value: {json.dumps(spec.get('selector'))}: field is immutable"
        causes.append({"reason": "FieldValueInvalid", "message": message, "field": "spec.selector"})
    for index, container in enumerate(spec["template"].get("spec", {}).get("containers") or []):
        if not container.get("image"):
            causes.append(required(f"spec.template.spec.containers[{index}].image"))
    if (spec.get("replicas") or 0) < 0:
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "message": f"Invalid value: {spec['replicas']}: must be greater than or equal to 0",
                "field": "spec.replicas",
            }
        )
    return causes


def route_causes(obj: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    """The HTTPRoute CRD's x-kubernetes-validations on backend references: a Service reference needs a port."""
    causes = []
    for r, rule in enumerate(obj.get("spec", {}).get("rules") or []):
        refs = [(f"spec.rules[{r}].backendRefs[{b}]", ref) for b, ref in enumerate(rule.get("backendRefs") or [])]
        for f, item in enumerate(rule.get("filters") or []):
            if "requestMirror" in item:
                refs.append(
                    (f"spec.rules[{r}].filters[{f}].requestMirror.backendRef", item["requestMirror"]["backendRef"])
                )
        for where, ref in refs:
            if ref.get("group", "") == "" and ref.get("kind", "Service") == "Service" and "port" not in ref:
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "message": 'Invalid value: "object": Must have port for Service reference',
                        "field": where,
                    }
                )
    return causes


def configmap_causes(obj: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    """A ConfigMap's data and binaryData together at most 1 MiB (core/validation's MaxSecretSize)."""
    size = sum(len(k) + len(v.encode()) for k, v in (obj.get("data") or {}).items())
    size += sum(len(k) + len(v) * 3 // 4 for k, v in (obj.get("binaryData") or {}).items())
    if size > MAX_OBJECT_BYTES:
        return [
            {
                "reason": "FieldValueTooLong",
                "message": f"Too long: must have at most {MAX_OBJECT_BYTES} bytes",
                "field": "",
            }
        ]
    return []


def object_size(obj: dict[str, Any]) -> int:
    """The stored size of an object (its JSON), for the 1 MiB limit on every kind."""
    return len(json.dumps(obj, separators=(",", ":")).encode())
