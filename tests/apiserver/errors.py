"""The API server's refusals as its `Status` objects, so the client raises what it would raise in a cluster.

Each helper builds the message and details exactly as k8s.io/apimachinery's `errors.New*` do (the
qualified resource `configmaps` or `deployments.apps`, the object's name, the field causes), because the
controller logs and matches on them.
"""

from __future__ import annotations

from typing import Any

from tests.apiserver.resources import Resource

MAX_OBJECT_BYTES = 1024 * 1024
MAX_BODY_BYTES = 3 * 1024 * 1024
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
)


class ApiError(Exception):
    """A request the API server refuses: its HTTP code, reason, message and details."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        """Return the `Status` object the API server answers with."""
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        body.update(message=self.message, reason=self.reason, code=self.code)
        if self.details is not None:
            body["details"] = self.details
        return body


def details(resource: Resource, name: str, **more: Any) -> dict[str, Any]:
    """The `details` of a Status about one object: name, group (omitted for the core group), kind."""
    found: dict[str, Any] = {"name": name}
    if resource.group:
        found["group"] = resource.group
    return {**found, "kind": resource.plural, **more}


def not_found(resource: Resource, name: str) -> ApiError:
    """404 NotFound, as `errors.NewNotFound`."""
    return ApiError(404, "NotFound", f'{resource.qualified} "{name}" not found', details(resource, name))


def already_exists(resource: Resource, name: str) -> ApiError:
    """409 AlreadyExists, as `errors.NewAlreadyExists`."""
    return ApiError(409, "AlreadyExists", f'{resource.qualified} "{name}" already exists', details(resource, name))


def conflict(resource: Resource, name: str) -> ApiError:
    """409 Conflict on a stale resourceVersion, as the registry's optimistic-concurrency check answers."""
    message = (
        f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, details(resource, name))


def invalid(resource: Resource, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422 Invalid with field causes, as `errors.NewInvalid` (one cause plain, several in brackets)."""
    said = [f"{c['field']}: {c['message']}" if c["field"] else c["message"] for c in causes]
    listed = said[0] if len(said) == 1 else f"[{', '.join(said)}]"
    kind = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {listed}',
        {**details(resource, name, causes=causes), "kind": resource.kind},
    )


def unsupported_media(content_type: str, accepted: tuple[str, ...] = PATCH_TYPES) -> ApiError:
    """415 UnsupportedMediaType, as the patch handler answers a Content-Type it does not take for the kind."""
    message = f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}"
    return ApiError(
        415,
        "UnsupportedMediaType",
        message,
        {"causes": [{"reason": "UnexpectedHeader", "field": "Content-Type", "message": content_type}]},
    )


def too_large() -> ApiError:
    """413 RequestEntityTooLarge: the request body is over the API server's 3 MiB limit."""
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY_BYTES}")


def bad_request(message: str) -> ApiError:
    """400 BadRequest: a body that cannot be decoded or a patch that cannot be applied."""
    return ApiError(400, "BadRequest", message)
