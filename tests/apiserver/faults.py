"""Fault knobs: writes refused with a chosen status, and an API server that cannot be reached.

A refusal is matched on what RBAC and admission see of a request (verb, resource, name, subresource) and
answers a real `Status` (403 Forbidden as the authorizer words it, 404, 422, 500, 503), a given number of
times or until cleared. Unreachability raises what urllib3 raises when nothing listens (MaxRetryError with
a NewConnectionError), so the kubernetes client surfaces it exactly as against a down API server.
"""

from __future__ import annotations

from dataclasses import dataclass

from urllib3.exceptions import MaxRetryError, NewConnectionError

from tests.apiserver.errors import ApiError
from tests.apiserver.resources import Resource

REASONS = {
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class Refusal:
    """Refuse requests matching verb/resource/name/subresource (None: any) with `code`, `times` times (None: always)."""

    verb: str | None
    resource: str | None
    name: str | None
    subresource: str | None
    code: int
    message: str | None
    times: int | None

    def matches(self, verb: str, resource: str, name: str, subresource: str) -> bool:
        wanted = (self.verb, self.resource, self.name, self.subresource)
        return all(w is None or w == got for w, got in zip(wanted, (verb, resource, name, subresource), strict=True))


class Faults:
    """The knobs in force: refusals in order of installation, and requests left to fail to connect."""

    def __init__(self) -> None:
        self.refusals: list[Refusal] = []
        self.unreachable = 0

    def refuse(self, refusal: Refusal) -> None:
        self.refusals.append(refusal)

    def connect(self, url: str) -> None:
        """Raise the client's connection error while the API server is unreachable."""
        if self.unreachable:
            self.unreachable -= 1
            reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
            raise MaxRetryError(None, url, reason)  # type: ignore[arg-type]

    def check(self, verb: str, resource: Resource, namespace: str, name: str, subresource: str, user: str) -> None:
        """Raise the first installed refusal that matches this request (and count it down)."""
        for refusal in self.refusals:
            if not refusal.matches(verb, resource.plural, name, subresource):
                continue
            if refusal.times is not None:
                refusal.times -= 1
                if refusal.times == 0:
                    self.refusals.remove(refusal)
            raise refused(refusal, resource, namespace, name, subresource, verb, user)


def refused(
    refusal: Refusal, resource: Resource, namespace: str, name: str, sub: str, verb: str, user: str
) -> ApiError:
    """The Status of a refusal, worded as the API server words each code."""
    code, target = refusal.code, f"{resource.plural}/{sub}" if sub else resource.plural
    if refusal.message is not None:
        message = refusal.message
    elif code == 403:
        message = (
            f'{resource.qualified} "{name}" is forbidden: User "{user}" cannot {verb} resource "{target}" '
            f'in API group "{resource.group}" in the namespace "{namespace}"'
        )
    elif code == 404:
        message = f'{resource.qualified} "{name}" not found'
    elif code == 500:
        message = "Internal error occurred: injected by the stand-in"
    elif code == 503:
        message = "the server is currently unable to handle the request"
    else:
        message = f'{resource.qualified} "{name}" is invalid: injected by the stand-in'
    details = {"name": name, "kind": resource.plural, **({"group": resource.group} if resource.group else {})}
    return ApiError(code, REASONS.get(code, "Unknown"), message, details)
