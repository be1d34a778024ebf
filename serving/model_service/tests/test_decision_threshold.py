"""A binary model's own threshold (`plinth.decision`) labels every answer: /predict, /v2, the predicted-class
metric, batch scoring and evaluate agree row for row, and a model without one keeps the 0.5 rule.

The model is the scikit-learn candidate fitted on an imbalanced table (about 8 % positives) and finalised on
validation rows (`components/common/decision.py`): at 0.5 it almost never answers the rare class.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import mlflow
import numpy as np
import pyarrow.dataset as ds
import pytest
from mlflow.models import get_model_info
from prometheus_client import REGISTRY
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import confusion_matrix
from starlette.testclient import TestClient

from components.common import modeling, tracking
from components.common.decision import SIGMOID, calibrated
from components.common.task import BINARY, TAG_TASK, encode_labels, predicted_index
from components.common.tests.imbalanced import TARGET, Finalised, finalised_candidate
from components.evaluate.core import run as evaluate
from components.register.core import choose_signer, register
from components.score.core import Request
from components.score.core import score as score_table
from serving.bench.demo_model import RegisteredModel, log_as_gate_winner
from serving.model_service.columns import FrameBuilder
from serving.model_service.compiled import compile_model

from .conftest import asgi_client, env_for
from .test_compiled import fitted, instances, numbers, table

NAME = "plinth-test-imbalanced"


@pytest.fixture(scope="module")
def final() -> Finalised:
    return finalised_candidate()


@pytest.fixture(scope="module")
def tuned(store: str, final: Finalised) -> tuple[RegisteredModel, str]:
    """Register the finalised candidate with its decision; return it and its logged model URI."""
    client = tracking.connect(store)
    experiment_id = tracking.ensure_experiment(client, "serving-tests", store)
    decision = final.decision.metadata()
    uri = log_as_gate_winner(
        client,
        experiment_id,
        lambda: modeling.log_model(final.model, final.x_train, final.profile, "sklearn", decision=decision),
    )
    registration = register(
        client, uri, NAME, tracking.CHAMPION, {TAG_TASK: BINARY}, "imbalanced", choose_signer(client, store)
    )
    task = final.profile.task
    model = RegisteredModel(store, NAME, registration.version, final.model, final.x_test, task, final.profile)
    return model, uri


@pytest.fixture(scope="module")
def tuned_service(tuned: tuple[RegisteredModel, str]) -> Iterator[tuple[ModuleType, TestClient]]:
    with asgi_client(env_for(tuned[0])) as pair:
        yield pair


def label_description(client: TestClient) -> str:
    """Return what the published contract (/docs.json) says about a binary answer's label."""
    return client.get("/docs.json").json()["components"]["schemas"]["Prediction"]["properties"]["label"]["description"]


def predicted_class(name: str) -> float:
    return REGISTRY.get_sample_value("plinth_predicted_class_total", {"class": name}) or 0.0


def v2_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a V2 infer body with one tensor per column (strings as BYTES)."""
    return {
        "inputs": [
            {
                "name": name,
                "datatype": "BYTES" if isinstance(rows[0][name], str) else "FP64",
                "shape": [len(rows)],
                "data": [row[name] for row in rows],
            }
            for name in rows[0]
        ]
    }


def test_served_labels_use_the_tuned_threshold(tuned, tuned_service, final: Finalised) -> None:
    model, _ = tuned
    module, client = tuned_service
    threshold = final.decision.threshold
    assert threshold is not None
    assert module.TASK.threshold == threshold
    rows = model.instances()
    before = predicted_class("1")
    answer = client.post("/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text
    labels = [p["label"] for p in answer.json()["predictions"]]
    output = model.expected()
    assert labels == predicted_index(output, BINARY, threshold).tolist()
    assert [p["probability"] for p in answer.json()["predictions"]] == pytest.approx(output[:, 1].tolist())
    positives = sum(labels)
    assert positives > 2 * int((output[:, 1] >= 0.5).sum())  # at 0.5 it would hardly ever say "bought"
    assert predicted_class("1") - before == positives  # the rollout's divergence counts the same labels
    v2 = client.post(f"/v2/models/{NAME}/infer", json=v2_body(rows))
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"] == labels
    described = label_description(client)
    assert described == f"1 when probability >= {threshold:.6g}, else 0."  # the published contract says so


def test_batch_scoring_and_evaluate_label_row_for_row_as_the_service(
    tuned, tuned_service, final: Finalised, tmp_path: Path
) -> None:
    model, uri = tuned
    _, client = tuned_service
    served = [p["label"] for p in client.post("/predict", json={"instances": model.instances()}).json()["predictions"]]
    source = tmp_path / "rows.parquet"
    frame = final.x_test.reset_index(drop=True)
    frame.to_parquet(source, index=False)
    out = tmp_path / "scored"
    summary = score_table(Request(str(source), NAME, out=str(out)), model.tracking_uri, "threshold-test-run")
    assert summary is not None
    scored = ds.dataset(out / "predictions", partitioning="hive").to_table().to_pandas().sort_values("source_row")
    assert scored["label"].tolist() == served

    model_dir = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path / "model"))
    test_path = tmp_path / "test.parquet"
    frame.assign(**{TARGET: final.y_test.to_numpy()}).to_parquet(test_path, index=False)
    run_id = get_model_info(uri).run_id  # the candidate's run, where evaluate logs its test metrics
    candidate = {"name": "sklearn", "run_id": run_id, "model_uri": uri, "files_digest": "-"}
    result = evaluate(model_dir, str(test_path), model.tracking_uri, json.dumps(candidate))
    truth = encode_labels(final.profile.task, final.y_test)
    assert result["confusion"]["matrix"] == confusion_matrix(truth, served, labels=[0, 1]).tolist()
    assert result["candidate"]["decision"] == final.decision.metadata()
    assert result["candidate"]["metrics"]["ece"] < 0.1


def test_a_model_without_a_decision_answers_as_before(client: TestClient, registered: RegisteredModel, service_module):
    assert service_module.TASK.threshold is None
    output = registered.expected()
    labels = [
        p["label"] for p in client.post("/predict", json={"instances": registered.instances()}).json()["predictions"]
    ]
    assert labels == (output[:, 1] >= 0.5).astype(int).tolist()
    assert 0 < sum(labels) < len(labels)
    assert label_description(client) == "1 when probability >= 0.5, else 0."


@pytest.mark.parametrize("candidate", ["sklearn", "torch"])
def test_a_calibrated_candidate_keeps_the_compiled_path(candidate: str) -> None:
    # The calibrator wraps the learner, not the pipeline, so the fitted preprocessing still compiles.
    model, columns, profile, features = fitted(candidate, "binary")
    _, _, target = table("binary")
    calibrated_model = calibrated(model, features, target, SIGMOID)
    compiled = compile_model(calibrated_model, [c.name for c in columns], numbers(columns), profile.task)
    assert compiled is not None
    assert isinstance(compiled.learner, CalibratedClassifierCV)
    batch = FrameBuilder(columns).build(instances(features, columns))
    expected = modeling.predict_output(calibrated_model, profile.task, batch.frame)
    assert not np.allclose(expected, modeling.predict_output(model, profile.task, batch.frame))
    np.testing.assert_allclose(compiled.predict(batch), expected, rtol=1e-9, atol=1e-12)
