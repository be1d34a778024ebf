"""A Deployment's /scale subresource: the autoscaling/v1 Scale read from it and written back into it."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.apiserver.errors import ApiError


def scale_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale of a Deployment."""
    meta = deployment["metadata"]
    labels = deployment["spec"].get("selector", {}).get("matchLabels", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": deployment["spec"].get("replicas", 1)},
        "status": {
            "replicas": deployment.get("status", {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


def with_scale(deployment: dict[str, Any], scale: dict[str, Any]) -> dict[str, Any]:
    """The Deployment with a written Scale's replicas (and its resourceVersion as precondition)."""
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise ApiError(
            422,
            "Invalid",
            f'Scale.autoscaling "{deployment["metadata"]["name"]}" is invalid: spec.replicas: '
            f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0",
        )
    new = copy.deepcopy(deployment)
    new["spec"]["replicas"] = replicas
    new["metadata"]["resourceVersion"] = (scale.get("metadata") or {}).get("resourceVersion") or deployment["metadata"][
        "resourceVersion"
    ]
    new["metadata"].pop("managedFields", None)
    new["metadata"]["managedFields"] = copy.deepcopy(deployment["metadata"].get("managedFields") or [])
    return new
