"""`fieldValidation`: what the API server does with fields its schema does not declare.

`Strict` refuses the request (400, `strict decoding error: unknown field "spec.x"`), `Warn` drops each field and
says so in a `Warning` header, `Ignore` drops it silently. A request without the parameter (the kubernetes
Python client sends none) is refused with 422 as any other invalid field: stricter than the API server, whose
default is `Warn`, so a client of the controller's kinds cannot lean on a field being dropped.
"""

from __future__ import annotations

import re
from typing import Any

from tests.apiserver.errors import ApiError, bad_request

UNDECLARED = "field not declared in schema"
MODES = ("Strict", "Warn", "Ignore")
STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def mode_of(query: dict[str, str]) -> str:
    """The request's mode ("" when it names none); 400 for a mode the API server does not know."""
    found = query.get("fieldValidation", "")
    if found and found not in MODES:
        raise bad_request(
            f'fieldValidation: Unsupported value: "{found}": supported values: "Ignore", "Strict", "Warn"'
        )
    return found


def drop(obj: dict[str, Any], field: str) -> None:
    """Remove the field a cause names (`spec.template.spec.containers[0].x`) from `obj`."""
    steps: list[str | int] = [int(i) if i else k for k, i in STEP.findall(field)]
    parent: Any = obj
    for step in steps[:-1]:
        parent = parent[step]
    parent.pop(steps[-1], None)


def undeclared(causes: list[dict[str, str]], obj: dict[str, Any], mode: str) -> tuple[list[dict[str, str]], list[str]]:
    """The causes left and the warnings to send once `mode` has dealt with the undeclared fields in `obj`."""
    unknown = [c["field"] for c in causes if c["message"] == UNDECLARED]
    if not unknown or not mode:
        return causes, []
    if mode == "Strict":
        raise ApiError(
            400, "BadRequest", "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)
        )
    for field in unknown:
        drop(obj, field)
    left = [c for c in causes if c["message"] != UNDECLARED]
    return left, [f'unknown field "{f}"' for f in unknown] if mode == "Warn" else []
