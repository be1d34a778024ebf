"""Real Open Inference Protocol clients written by others against real servers: Triton's and KServe's.

Both run on the session's servers (the binary model, and the churn model: FP64, BYTES, BOOL and INT64
inputs), so no server is started here. Their answers equal /predict's for the same rows.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from serving.bench.demo_model import RegisteredModel

from .conftest import Server

pytestmark = pytest.mark.integration
NUMPY_TYPES = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_}
KSERVE_PYTHON = Path(".tools/kserve-client/bin/python")


def complete_rows(model: RegisteredModel, count: int) -> list[dict[str, Any]]:
    """Rows without missing values (Triton's numpy arrays have no null)."""
    return [row for row in model.instances(0, 300) if None not in row.values()][:count]


def tensors(server: Server, model: RegisteredModel, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one {name, datatype, data} per input, as the model's V2 metadata publishes them."""
    metadata = httpx.get(f"{server.url}/v2/models/{model.name}", timeout=10).json()
    return [
        {"name": spec["name"], "datatype": spec["datatype"], "data": [row[spec["name"]] for row in rows]}
        for spec in metadata["inputs"]
    ]


def predicted(server: Server, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = httpx.post(f"{server.url}/predict", json={"instances": rows}, timeout=30)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["predictions"])


def triton_inputs(specs: list[dict[str, Any]]) -> list[triton.InferInput]:
    inputs = []
    for spec in specs:
        tensor = triton.InferInput(spec["name"], [len(spec["data"])], spec["datatype"])
        values: np.ndarray = np.array(spec["data"], dtype=NUMPY_TYPES.get(spec["datatype"], np.object_))
        tensor.set_data_from_numpy(values, binary_data=False)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("model", ["registered", "churn"])
def test_tritonclient_scores_as_predict_does(model: str, request: pytest.FixtureRequest) -> None:
    registered: RegisteredModel = request.getfixturevalue(model)
    server: Server = request.getfixturevalue("server" if model == "registered" else "churn_server")
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(registered.name)
    assert not client.is_model_ready("no-such-model")
    assert client.get_model_metadata(registered.name)["versions"] == [registered.version]
    rows = complete_rows(registered, 6)
    specs = tensors(server, registered, rows)
    if model == "churn":
        assert {"FP64", "BYTES", "BOOL", "INT64"} <= {spec["datatype"] for spec in specs}
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("predict", "predict_proba")]
    result = client.infer(registered.name, triton_inputs(specs), outputs=outputs, request_id="triton-1")
    expected = predicted(server, rows)
    assert result.get_response()["id"] == "triton-1"
    assert result.as_numpy("predict").tolist() == [p["label"] for p in expected]
    probabilities = [list(p["probabilities"].values()) for p in expected]
    np.testing.assert_allclose(result.as_numpy("predict_proba"), probabilities, rtol=1e-12)
    wrong = triton_inputs([{**specs[0], "datatype": "BOOL", "data": [True] * len(rows)}, *specs[1:]])
    with pytest.raises(InferenceServerException, match=f"input '{specs[0]['name']}': datatype 'BOOL'"):
        client.infer(registered.name, wrong)
    with pytest.raises(InferenceServerException, match="not served here"):
        client.infer("no-such-model", triton_inputs(specs))


def test_kserve_rest_client_scores_as_predict_does(
    churn: RegisteredModel, churn_server: Server, repo_root: Path
) -> None:
    python = repo_root / KSERVE_PYTHON
    if not python.exists():
        pytest.skip(f"kserve client not installed ({KSERVE_PYTHON}: make k8s-tools installs it)")
    rows = complete_rows(churn, 4)
    specs = tensors(churn_server, churn, rows)
    script = Path(__file__).with_name("kserve_client.py")
    command = [str(python), str(script), churn_server.url, churn.name, json.dumps(specs)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert (report["live"], report["ready"], report["model_ready"], report["id"]) == (True, True, True, "kserve-1")
    expected = predicted(churn_server, rows)
    assert report["outputs"]["predict"] == [p["label"] for p in expected]
    probabilities = [value for p in expected for value in p["probabilities"].values()]
    np.testing.assert_allclose(report["outputs"]["predict_proba"], probabilities, rtol=1e-12)
    assert "400 Bad Request" in report["wrong_datatype"]
    assert f"input '{specs[0]['name']}': datatype 'BOOL'" in report["wrong_datatype"]
