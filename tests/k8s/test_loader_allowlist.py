"""Non-plinth loaders run nowhere unless the chart lists them, and then the same list reaches every pod that checks.

The serving pods refuse a model whose loader is not plinth's before importing it; the rollout controller refuses
it before any traffic. Both read PLINTH_ALLOWED_LOADERS / PLINTH_ALLOWED_FOREIGN_MODELS, which only the values
`signing.allowedLoaders` / `signing.allowedForeignModels` set.
"""

from __future__ import annotations

import pytest
from k8s_tooling import env_of, load_documents, named, render, render_with

PODS = ("release-plinth-serving-stable", "release-plinth-serving-canary", "release-plinth-serving-rollout")
LOADERS, MODELS = "PLINTH_ALLOWED_LOADERS", "PLINTH_ALLOWED_FOREIGN_MODELS"


def env(objects: list[dict], deployment: str) -> dict[str, dict]:
    return env_of(named(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0])


def test_by_default_no_pod_allows_a_foreign_loader() -> None:
    objects = render("default")
    for name in PODS:
        assert LOADERS not in env(objects, name), name
        assert MODELS not in env(objects, name), name


def test_the_lists_reach_the_serving_pods_and_the_controller_alike() -> None:
    result = render_with(
        "--set", "signing.allowedLoaders={mlflow.pyfunc.model,my_org.loader}",
        "--set", "signing.allowedForeignModels={churn-rules}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    objects = load_documents(result.stdout)
    for name in PODS:
        assert env(objects, name)[LOADERS]["value"] == "mlflow.pyfunc.model,my_org.loader", name
        assert env(objects, name)[MODELS]["value"] == "churn-rules", name


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("signing.allowedLoaders={evil;rm -rf}", "/signing/allowedLoaders/0"),
        ("signing.allowedForeignModels={a b\\,c}", "/signing/allowedForeignModels/0"),
    ],
)
def test_an_entry_that_would_widen_the_list_is_refused(value: str, where: str) -> None:
    result = render_with("--set", value)
    assert result.returncode != 0
    assert where in result.stderr, result.stderr
