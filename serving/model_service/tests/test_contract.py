"""The published OpenAPI contract is exact: schemathesis with every check finds nothing, for two models.

Both operations are fuzzed: /predict, and /feedback, where a generated request id names no logged prediction
(404), or one issued too long ago (410), all published answers to a valid body. Requests carry a labelling
client's bearer token; schemathesis also sends /feedback without it (401, published with its scheme).

`--checks all` includes positive_data_acceptance (a schema-valid request must be accepted),
negative_data_rejection (a schema-invalid one must be refused) and response_schema_conformance (every
answer, errors included, must match its published schema). One configuration is added: a body over
PLINTH_MAX_BODY_BYTES is answered 413 whatever it holds, and no JSON Schema can say how many bytes a body
has, so 413 counts as an expected answer for both data checks (it is published, and its body is checked).
Likewise no JSON Schema can say that a V2 input tensor holds as many values as its shape, or that every input
has the same rows: for the /v2 infer operations, 400 (naming the input) counts as an expected answer too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import FEEDBACK_TOKEN, Server

pytestmark = pytest.mark.integration

# 100 examples per operation, 10 for the GETs (health, readiness, model metadata): their only inputs are a model
# name and version in the path, which 10 examples and the coverage phase's boundary cases cover; the bodies of
# /predict, /feedback and /v2 infer keep all 100. Every operation is fuzzed, with every check.
CONFIG = """
[generation]
max-examples = 100

[[operations]]
include-method = "GET"
generation.max-examples = 10

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "410", "413", "429", "5xx"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

[[operations]]
include-path-regex = "/infer$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "413", "429", "5xx"]
"""


def schemathesis(server: Server, work: Path) -> subprocess.CompletedProcess[str]:
    """Run every schemathesis check against the server's /docs.json (caches and config stay in `work`)."""
    config = work / "schemathesis.toml"
    # The published bearer scheme gets the servers' labelling client (conftest); `ignored_auth` also sends none.
    config.write_text(f'{CONFIG}\n[auth.openapi.labellingClient]\nbearer = "{FEEDBACK_TOKEN}"\n')
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config),
        "run", f"{server.url}/docs.json", "--checks", "all", "--seed", "7",
        "--generation-database", "none", "--no-color",
    ]  # fmt: skip
    return subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=420, check=False)


@pytest.mark.parametrize("model", ["server", "churn_server"], ids=["binary-numeric", "mixed-types-with-nulls"])
def test_schemathesis_all_checks_find_nothing(model: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    server: Server = request.getfixturevalue(model)
    result = schemathesis(server, tmp_path)
    report = result.stdout[-6000:]
    assert result.returncode == 0, report
    assert "No issues found" in result.stdout, report
    assert "Open API 3.1.0" in result.stdout, report
    assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
    paths = httpx.get(f"{server.url}/docs.json", timeout=5).json()["paths"]
    assert {"/predict", "/feedback", "/v2/models/{name}/infer", "/v2/health/ready"} <= set(paths)  # all fuzzed
