"""The chart's ValidatingAdmissionPolicy and binding evaluated with cel-python in front of every write.

`AdmissionPolicy` plays the API server's part: the binding's namespace selector and the policy's resource rules
(subresources included: `deployments` does not match `deployments/scale`) decide whether a request is matched,
the matchConditions whether it is in scope, and every validation must then be true; an evaluation error denies,
as `failurePolicy: Fail` does. Variables are evaluated only when a validation reads them, as the API server does.
The request carries what the API server's carries (name, namespace, operation, userInfo, resource, kind,
subResource) and the objects are the defaulted ones, after patch application and before storage. What cel-python
cannot check is the API server's type-checking environment; the chart's CEL is written to need none of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import celpy
from celpy import celtypes
from celpy.evaluation import CELEvalError

from tests.apiserver.errors import ApiError
from tests.apiserver.resources import BY_KIND, Resource

ENV = celpy.Environment()
REASON_CODES = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}


class LazyVariables(celtypes.MapType):
    """The policy's `variables`: each evaluated on first read; an error becomes a CEL error value."""

    def __init__(self, evaluate: dict[str, Callable[[], Any]]) -> None:
        super().__init__({celtypes.StringType(name): celtypes.BoolType(False) for name in evaluate})
        self.evaluate: dict[str, Callable[[], Any]] = evaluate
        self.found: dict[str, Any] = {}

    def __getitem__(self, key: Any) -> Any:
        name = str(key)
        if name not in self.found:
            try:
                self.found[name] = self.evaluate[name]()
            except CELEvalError as error:
                self.found[name] = error
        return self.found[name]


@dataclass(frozen=True)
class Verdict:
    """Whether a request is matched, and the messages (and reasons) of the validations it fails."""

    matched: bool
    denied: list[str]
    reasons: list[str] = field(default_factory=list, compare=False)

    @property
    def allowed(self) -> bool:
        return not self.denied


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a set of labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        found = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not found:
            return False
    return True


def rule_matches(rule: dict[str, Any], operation: str, resource: Resource, sub: str, name: str) -> bool:
    """One resource rule: API group, version, resource (`plural`, `plural/sub`, `*`, `*/sub`), operation."""
    wanted = f"{resource.plural}/{sub}" if sub else resource.plural
    listed = set(rule.get("resources") or [])
    resources = wanted in listed or (not sub and "*" in listed) or (sub and f"*/{sub}" in listed)
    resources = resources or (bool(sub) and f"{resource.plural}/*" in listed) or "*/*" in listed
    return bool(
        (resource.group in rule["apiGroups"] or "*" in rule["apiGroups"])
        and ("*" in rule["apiVersions"] or resource.version in rule["apiVersions"])
        and resources
        and (operation in rule["operations"] or "*" in rule["operations"])
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
    )


def later(program: celpy.Runner, activation: dict[str, Any]) -> Callable[[], Any]:
    """A variable's evaluation, deferred until a validation reads it."""
    return lambda: program.evaluate(activation)


class AdmissionPolicy:
    """A rendered ValidatingAdmissionPolicy and its binding, applied to one request at a time."""

    def __init__(self, policy: dict[str, Any], binding: dict[str, Any]) -> None:
        self.name, self.binding_name = policy["metadata"]["name"], binding["metadata"]["name"]
        self.policy, self.binding = policy["spec"], binding["spec"]
        assert self.binding["policyName"] == self.name
        self.conditions = [self.compile(c["expression"]) for c in self.policy.get("matchConditions", [])]
        self.variables = {v["name"]: self.compile(v["expression"]) for v in self.policy.get("variables", [])}
        self.validations = [
            (
                self.compile(v["expression"]),
                v.get("message") or f"failed expression: {v['expression']}",
                v.get("reason", "Invalid"),
            )
            for v in self.policy["validations"]
        ]

    @staticmethod
    def compile(expression: str) -> celpy.Runner:
        return ENV.program(ENV.compile(expression))

    def matches(self, operation: str, resource: Resource, sub: str, name: str, labels: dict[str, str]) -> bool:
        """The binding's and the policy's namespace selectors and resource rules."""
        for where in (self.binding.get("matchResources") or {}, self.policy.get("matchConstraints") or {}):
            if not selects(where.get("namespaceSelector") or {}, labels):
                return False
            if any(rule_matches(r, operation, resource, sub, name) for r in where.get("excludeResourceRules") or []):
                return False
        rules = self.policy["matchConstraints"]["resourceRules"]
        return any(rule_matches(rule, operation, resource, sub, name) for rule in rules)

    def review(
        self,
        new: dict[str, Any] | None,
        old: dict[str, Any] | None,
        *,
        user: str,
        namespace: str,
        operation: str = "UPDATE",
        sub_resource: str = "",
        namespace_labels: dict[str, str] | None = None,
        resource: Resource | None = None,
    ) -> Verdict:
        """Return whether the request is matched and, if so, the validations it fails.

        `resource` is the one requested, where the objects are of another kind (a subresource's: a Deployment's
        /scale is reviewed on autoscaling/v1 Scale objects, as the API server hands them to admission).
        """
        obj = new if new is not None else old
        assert obj is not None
        resource = resource or BY_KIND[(obj["apiVersion"], obj["kind"])]
        group, _, version = str(obj["apiVersion"]).rpartition("/")
        name = obj["metadata"].get("name", "")
        labels = namespace_labels if namespace_labels is not None else {"kubernetes.io/metadata.name": namespace}
        if not self.matches(operation, resource, sub_resource, name, labels):
            return Verdict(False, [])
        request = {
            "operation": operation,
            "name": name,
            "namespace": namespace,
            "resource": {"group": resource.group, "version": resource.version, "resource": resource.plural},
            "kind": {"group": group, "version": version, "kind": obj["kind"]},
            "subResource": sub_resource,
            "userInfo": {"username": user},
            "dryRun": False,
        }
        activation: dict[str, Any] = {
            "request": celpy.json_to_cel(request),
            "object": celpy.json_to_cel(new),
            "oldObject": celpy.json_to_cel(old),
        }
        try:
            if not all(condition.evaluate(activation) for condition in self.conditions):
                return Verdict(False, [])
        except CELEvalError as error:  # a matchCondition's error with failurePolicy Fail denies
            return Verdict(True, [f"failed to evaluate matchConditions: {error}"], ["Invalid"])
        activation["variables"] = LazyVariables(
            {name: later(program, activation) for name, program in self.variables.items()}
        )
        denied, reasons = [], []
        for program, message, reason in self.validations:
            try:
                passed = bool(program.evaluate(activation))
            except CELEvalError as error:  # failurePolicy: Fail
                passed, message, reason = False, f"expression resulted in error: {error}", "Invalid"
            if not passed:
                denied.append(message)
                reasons.append(reason)
        return Verdict(True, denied, reasons)

    def refusal(self, verdict: Verdict, resource: Resource, name: str) -> ApiError:
        """The API server's answer to the first denial: 422 Invalid unless the validation names a reason."""
        said = f"ValidatingAdmissionPolicy '{self.name}' with binding '{self.binding_name}'"
        message = f"{said} denied request: {verdict.denied[0]}"
        reason = verdict.reasons[0] if verdict.reasons else "Invalid"
        details: dict[str, Any] = {"name": name, "kind": resource.plural, "causes": [{"message": message}]}
        if resource.group:
            details["group"] = resource.group
        return ApiError(
            REASON_CODES.get(reason, 422), reason, f'{resource.qualified} "{name}" is forbidden: {message}', details
        )


def install(objects: list[dict[str, Any]]) -> list[AdmissionPolicy]:
    """The policies of rendered manifests: each ValidatingAdmissionPolicy with every binding that names it."""
    policies = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ValidatingAdmissionPolicy"}
    bindings = [o for o in objects if o.get("kind") == "ValidatingAdmissionPolicyBinding"]
    return [
        AdmissionPolicy(policies[b["spec"]["policyName"]], b) for b in bindings if b["spec"]["policyName"] in policies
    ]
