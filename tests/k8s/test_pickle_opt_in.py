"""The serving pods load pickles only with the `model.allowPickle` opt-in; the controller never does."""

from __future__ import annotations

import pytest
from k8s_tooling import env_of, load_documents, named, render, render_with

SERVING = ("release-plinth-serving-stable", "release-plinth-serving-canary")
CONTROLLER = "release-plinth-serving-rollout"
ALLOW_PICKLE = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


def allow_pickle(objects: list[dict], deployment: str) -> str:
    container = named(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    return str(env_of(container)[ALLOW_PICKLE]["value"])


def test_by_default_no_pod_loads_a_pickle() -> None:
    objects = render("default")
    assert [allow_pickle(objects, name) for name in (*SERVING, CONTROLLER)] == ["false", "false", "false"]


def test_the_opt_in_reaches_the_serving_pods_only() -> None:
    result = render_with("--set", "model.allowPickle=true")
    assert result.returncode == 0, result.stderr
    objects = load_documents(result.stdout)
    assert [allow_pickle(objects, name) for name in SERVING] == ["true", "true"]
    assert allow_pickle(objects, CONTROLLER) == "false"


@pytest.mark.parametrize("value", ["yes", "1"])
def test_an_opt_in_that_is_not_a_boolean_is_refused(value: str) -> None:
    result = render_with("--set-string", f"model.allowPickle={value}")
    assert result.returncode != 0
    assert "/model/allowPickle" in result.stderr
