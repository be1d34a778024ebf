"""MLflow in production mode, for real: the platform's server command on PostgreSQL and S3, two replicas.

The command, environment and basic-auth config are the ones manifests/platform/mlflow runs (read from its
deployment.yaml, the init container's render_auth_config.py run as the pod runs it), with the Secrets' values
pointing at the session's PostgreSQL and moto S3 servers. A model logged and registered through one replica is
read back through the other, its files lie in the bucket and its rows in the database.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psycopg
import pytest
import yaml
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from components.common import signing, tracking
from pipelines.compile import compile_all, compiled_path
from serving.embedded.processes import ManagedProcess, bin_path, free_port
from serving.rollout.tests.http_backend import wait_until
from serving.signer.server import serve
from tests.engines import MotoS3Server, PostgresServer
from tests.servers import cache_logins, stop_mlflow

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "manifests" / "platform" / "mlflow"
ADMIN = ("admin", "admin-password-of-this-test")
MODEL = "plinth-production-check"
LABEL_TOKEN = "production-check-labelling-token"
AUTH = {"Authorization": f"Bearer {LABEL_TOKEN}"}
SERVED = "s3-served"  # the model `make train` registers from the bucket (the `trained` fixture, once per module)


def pod_spec() -> dict:
    return yaml.safe_load((PLATFORM / "deployment.yaml").read_text())["spec"]["template"]["spec"]


def server_command(port: int, env: dict[str, str]) -> list[str]:
    """The Deployment's command with $(VAR) expanded as the kubelet does, on 127.0.0.1:`port`."""
    [container] = pod_spec()["containers"]
    command = [re.sub(r"\$\((\w+)\)", lambda match: env[match[1]], part) for part in container["command"]]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    hosts = command.index("--allowed-hosts") + 1
    command[hosts] += f",127.0.0.1:{port}"
    return [bin_path("mlflow"), *command[1:], "--workers", "1"]


@dataclass
class Platform:
    """The two replicas and where they keep their state."""

    replicas: list[Replica]
    database: str
    bucket: str


class Replica:
    """One MLflow server process running the platform's command."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        log = root / f"mlflow-{self.port}.log"
        self.process = ManagedProcess("mlflow server", server_command(self.port, env), log, env=env)
        self.process.ready_url = f"{self.uri}/health"


@pytest.fixture(scope="module")
def platform(
    postgres: PostgresServer, s3_server: MotoS3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from start_platform(postgres, s3_server, tmp_path_factory.mktemp("platform"), monkeypatch)


def start_platform(
    postgres: PostgresServer, s3_server: MotoS3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Platform]:
    name = f"mlflow_{uuid.uuid4().hex[:8]}"
    bucket = name.replace("_", "-")
    database = postgres.create_database(name)
    s3_server.create_bucket(bucket)
    # The pod's environment: what deployment.yaml takes from the Secrets and the ConfigMap mlflow-storage.
    env = {
        "MLFLOW_BACKEND_STORE_URI": database,
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts",
        **s3_server.credentials.env(),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key-of-this-test",
        "MLFLOW_AUTH_DATABASE_URI": database,
    }
    env.pop("AWS_ENDPOINT_URL")  # the pod has only MLFLOW_S3_ENDPOINT_URL: the server must find S3 by that
    [init] = pod_spec()["initContainers"]
    rendered = tmp_path / "basic_auth.ini"
    script, source = init["command"][1], init["command"][2]
    assert (script, source) == ("/opt/plinth/render_auth_config.py", "/etc/mlflow/basic_auth.ini")
    done = subprocess.run(
        [sys.executable, str(PLATFORM / "render_auth_config.py"), str(PLATFORM / "basic_auth.ini"), str(rendered)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert oct(rendered.stat().st_mode & 0o777) == "0o600", "the rendered file holds the database password"
    cache_logins(rendered)  # a test-only setting: the same grants, without a password hash per request
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(rendered)
    # The test's own client must not reach S3 itself: with --serve-artifacts every file goes through the server.
    for variable in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(variable, raising=False)
    # Nor may the servers inherit a tracking or registry URI from the test run's environment.
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    started = [Replica(tmp_path, env) for _ in range(2)]
    try:
        for replica in started:  # one after the other: the first migrates the empty database
            replica.process.start().wait_ready()
        yield Platform(started, name, bucket)
    finally:
        for replica in started:
            stop_mlflow(replica.process)


def test_a_model_registered_through_one_replica_reads_back_through_the_other(
    platform: Platform, postgres: PostgresServer, s3_server: MotoS3Server
):
    first, second = platform.replicas
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
    y = np.array([0, 1, 0, 1])
    model = LogisticRegression().fit(x, y)
    # Both URIs: an earlier test's components.common.tracking.connect leaves its registry URI set process-wide.
    mlflow.set_tracking_uri(first.uri)
    mlflow.set_registry_uri(first.uri)
    try:
        mlflow.set_experiment("production-check")
        with mlflow.start_run() as run:
            mlflow.log_metric("accuracy", 1.0)
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=MODEL,
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                skops_trusted_types=["numpy.dtype"],
                pip_requirements=["scikit-learn"],  # named: inferring them reloads the model in a subprocess
            )
        version = info.registered_model_version
        MlflowClient(first.uri, first.uri).set_registered_model_alias(MODEL, "champion", str(version))

        other = MlflowClient(second.uri, second.uri)
        assert other.get_model_version_by_alias(MODEL, "champion").run_id == run.info.run_id
        assert other.get_run(run.info.run_id).data.metrics["accuracy"] == 1.0
        mlflow.set_tracking_uri(second.uri)
        mlflow.set_registry_uri(second.uri)
        loaded = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")
        assert loaded.predict(x).tolist() == y.tolist()
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)

    artifact_root = other.get_run(run.info.run_id).info.artifact_uri
    assert artifact_root.startswith("mlflow-artifacts:/"), "clients go through the server, not to S3"
    listed = s3_server.client().list_objects_v2(Bucket=platform.bucket, Prefix="artifacts/")
    keys = [item["Key"] for item in listed["Contents"]]
    assert any(key.endswith("/MLmodel") for key in keys), keys
    with psycopg.connect(postgres.dsn(platform.database)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT name FROM registered_models")
        assert cursor.fetchall() == [(MODEL,)]
        cursor.execute("SELECT username FROM users")
        assert (ADMIN[0],) in cursor.fetchall(), "basic-auth's users live in the same PostgreSQL"


@dataclass
class Trained:
    """What `make train` from a bucket left: the table, the source URL, the runner's arguments and environment."""

    frame: pd.DataFrame
    source: str
    args: list[str]
    env: dict[str, str]
    public_key: Path
    home: Path


@dataclass
class Signer:
    """The signer service (serving/signer) on 127.0.0.1: where register asks, and the key serving verifies with."""

    url: str
    public_key: Path


@pytest.fixture(scope="module")
def signer(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signer]:
    """The signer against the first replica, as the platform's admin, with a key no pipeline step is given."""
    root = tmp_path_factory.mktemp("signer")
    key, _ = signing.signing_key(f"sqlite:///{root / 'mlflow.db'}", env={})  # a key file, as its Secret mounts it
    server = serve(tracking.connect(platform.replicas[0].uri), key, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Signer(f"http://127.0.0.1:{server.server_address[1]}", key.with_name(signing.PUBLIC_KEY_FILE))
    server.shutdown()
    server.server_close()


def train_from_s3(platform: Platform, s3_server: MotoS3Server, signer: Signer, tmp_path: Path, model: str) -> Trained:
    """`make train TRAIN_ARGS="--source s3://… --tracking-uri http://… --pipeline …"`, as its runner.

    The pipeline is compiled with the signer's URL, as a cluster's names its signer service; make would re-run
    setup. The runner's environment names the S3 server itself (the AWS variables a user exports), so one run
    can serve every test of the module.
    """
    from components.ingest.core import load_source

    bucket = s3_server.create_bucket(f"train-{uuid.uuid4().hex[:8]}")
    frame = load_source("sklearn:breast_cancer")
    frame.to_parquet(tmp_path / "table.parquet", index=False)
    s3_server.client().upload_file(str(tmp_path / "table.parquet"), bucket.removeprefix("s3://"), "table.parquet")
    source = f"{bucket}/table.parquet"
    pipeline = compiled_path("cpu", tmp_path / "compiled")  # training's: compile_all writes scoring-cpu.yaml too
    assert pipeline in compile_all(tmp_path / "compiled", signer_url=signer.url)
    unset = {"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"}  # as the s3_env fixture unsets them
    inherited = {name: value for name, value in os.environ.items() if name not in unset}
    env = {**inherited, **s3_server.credentials.env(), "PLINTH_HOME": str(tmp_path / "home")}
    args = ["--source", source, "--tracking-uri", platform.replicas[0].uri, "--model-name", model]
    args += ["--pipeline", str(pipeline), "--search-trials", "0"]  # a model is all this needs: no search
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.run_local", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Trained(frame, source, args, env, signer.public_key, tmp_path / "home")


@pytest.fixture(scope="module")
def trained(
    platform: Platform, s3_server: MotoS3Server, signer: Signer, tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    """One `make train` from a bucket for the module: each test reads it, none writes to its registered model."""
    return train_from_s3(platform, s3_server, signer, tmp_path_factory.mktemp("trained"), SERVED)


def test_make_train_reads_s3_and_records_to_the_production_server(platform: Platform, trained: Trained):
    from components.ingest.core import dataset_hash

    client = MlflowClient(platform.replicas[1].uri, platform.replicas[1].uri)
    champion = client.get_model_version_by_alias(SERVED, "champion")
    assert champion.tags["plinth.data_hash"] == dataset_hash(trained.frame), "the same bytes hash the same from S3"
    run = client.get_run(champion.run_id)
    parent = client.get_run(run.data.tags.get("mlflow.parentRunId", run.info.run_id))
    assert parent.data.params["source"] == trained.source
    assert not (trained.home / "mlflow.db").exists(), "nothing went to the local SQLite"

    absent = trained.source.replace("table.parquet", "absent.parquet")
    missing = subprocess.run(
        [sys.executable, "-m", "pipelines.run_local", *trained.args[2:], "--source", absent],
        cwd=ROOT,
        env=trained.env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert f"source not found: {absent}" in missing.stderr


def make_serve(trained: Trained, registry: str, store: str, home: Path) -> ManagedProcess:
    """`make serve` (python -m serving.model_service.serve) on a free port, on the production registry and store.

    Started, not yet ready: replicas start side by side, as a Deployment's do; the caller polls each.
    """
    port = free_port()
    env = {
        "PORT": str(port),
        "PLINTH_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "MLFLOW_TRACKING_URI": registry,
        "PLINTH_MODEL_NAME": SERVED,
        "PLINTH_VERIFY_KEY": str(trained.public_key),
        "PLINTH_REQUIRE_SIGNATURE": "true",
        "PLINTH_PREDICTION_STORE": store,
        "PLINTH_PAYLOAD_ARCHIVE": "off",
        "PLINTH_FEEDBACK_TOKENS": f"tests={LABEL_TOKEN}",  # the labelling client that sends the labels below
    }
    process = ManagedProcess(
        f"make serve :{port}",
        [sys.executable, "-m", "serving.model_service.serve"],
        home / "serve.log",
        env,
        f"http://127.0.0.1:{port}/readyz",
    )
    return process.start()


def test_the_production_loop_trains_from_a_bucket_serves_two_replicas_and_joins_every_label_on_a_third(
    platform: Platform, trained: Trained, s3_env, postgres: PostgresServer, tmp_path: Path
):
    """Issue scenario: S3 table -> MLflow on PostgreSQL + S3 -> two replicas on one PostgreSQL store; both stop;
    a new one takes every label, each joins once, and the one live-quality exporter counts it."""
    import httpx

    store = postgres.create_database(f"store_{uuid.uuid4().hex[:8]}")
    registry = platform.replicas[1].uri
    rows = trained.frame.drop(columns=["target"]).head(12)
    truths = trained.frame["target"].head(12).tolist()
    answered = []
    replicas = [make_serve(trained, registry, store, tmp_path / name) for name in ("a", "b")]
    try:
        for replica in replicas:
            replica.wait_ready()
        for replica, part in zip(replicas, (rows.iloc[:6], rows.iloc[6:]), strict=True):
            url = replica.ready_url.removesuffix("/readyz")
            response = httpx.post(f"{url}/predict", json={"instances": part.to_dict("records")}, timeout=60)
            assert response.status_code == 200, response.text
            answered += response.json()["predictions"]
    finally:
        for replica in replicas:
            replica.stop()
    fresh = make_serve(trained, registry, store, tmp_path / "c")
    exporter_port = free_port()
    exporter = ManagedProcess(
        "live-quality exporter",
        [sys.executable, "-m", "serving.model_service.live_quality", "--port", str(exporter_port), "--interval", "1"],
        tmp_path / "live-quality.log",
        {"PLINTH_PREDICTION_STORE": store},
        f"http://127.0.0.1:{exporter_port}/metrics",
    ).start()  # beside the new replica; it reads the store every second, before the labels and after them
    try:
        url = fresh.wait_ready().ready_url.removesuffix("/readyz")
        labelled = [
            httpx.post(
                f"{url}/feedback", json={"request_id": p["request_id"], "label": truth}, headers=AUTH, timeout=30
            )
            for p, truth in zip(answered, truths, strict=True)
        ]
        assert [r.status_code for r in labelled] == [200] * 12, [r.text for r in labelled]
        body = {"request_id": answered[0]["request_id"], "label": 1}
        again = httpx.post(f"{url}/feedback", json=body, headers=AUTH, timeout=30)
        assert again.status_code == 409
        exporter.wait_ready()
        right = sum(p["label"] == truth for p, truth in zip(answered, truths, strict=True))

        def counted() -> bool:
            text = httpx.get(f"http://127.0.0.1:{exporter_port}/metrics", timeout=10).text
            found = re.search(rf'plinth_live_correct_count\{{[^}}]*model_name="{SERVED}"[^}}]*\}} (\S+)', text)
            return found is not None and float(found.group(1)) == 12.0

        assert wait_until(counted, 30), "the exporter counts each label once"
        text = httpx.get(f"http://127.0.0.1:{exporter_port}/metrics", timeout=10).text
        found = re.search(rf'plinth_live_correct_sum\{{[^}}]*model_name="{SERVED}"[^}}]*\}} (\S+)', text)
        assert found is not None
        assert float(found.group(1)) == float(right)
    finally:
        exporter.stop()
        fresh.stop()
