"""Registry logins on a real basic-auth MLflow: the serving pods only read, the rollout controller edits, and
the trigger receiver writes its history in its own experiment, never on the model.

The users and grants are made with the admin REST calls manifests/README.md documents (same endpoints, same
bodies); the server runs the platform's own basic_auth.ini (default_permission NO_PERMISSIONS).
"""

from __future__ import annotations

import configparser
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.common.tracking import PROMOTED
from pipelines.triggers.act import Actor
from pipelines.triggers.policy import START, Guardrails, Trigger
from pipelines.triggers.record import EXPERIMENT as TRIGGER_EXPERIMENT
from pipelines.triggers.record import TriggerRecord
from pipelines.triggers.start import LocalStarter
from serving.experiments.__main__ import main as experiments_main
from serving.experiments.report import EXPERIMENT as EXPERIMENTS
from serving.experiments.tests.test_cluster import GONE, labelled, write_spec
from serving.model_service.store import PredictionStore
from serving.rollout.core.record import ROLLOUT_EXPERIMENT, RolloutRecorder
from tests.servers import MlflowServer, cache_logins

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
ADMIN = ("admin", "admin-password-of-this-test")
MODEL = "plinth-classifier"
CREATE_USER = "/api/2.0/mlflow/users/create"
GRANT = "/api/3.0/mlflow/users/permissions/grant"
# Who gets what, as in manifests/README.md: READ / EDIT on the model, READ on the experiment holding its files.
LOGINS = {"plinth-reader": "READ", "plinth-controller": "EDIT"}
# The receiver: EDIT on the plinth-triggers experiment (its history and records), READ on the model.
TRIGGERS_LOGIN = "plinth-triggers"
TRIGGERED_MODEL = "plinth-triggered"
# The experiment's decision loop: EDIT on the plinth-experiments experiment (its record), READ on the model.
EXPERIMENTS_LOGIN = "plinth-experiments"
EXPERIMENTED_MODEL = "plinth-experimented"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """The platform's basic_auth.ini with its database moved under a temporary directory; the admin password by env.

    With basic-auth's credential cache on (tests/servers.py says why); each request's grants are checked as ever.

    One server for the module: each test uses its own model and experiment names.
    """
    tmp_path = tmp_path_factory.mktemp("mlflow-auth")
    ini = configparser.ConfigParser()
    ini.read(ROOT / "manifests" / "platform" / "mlflow" / "basic_auth.ini")
    assert ini["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    ini["mlflow"]["database_uri"] = f"sqlite:///{tmp_path / 'basic_auth.db'}"
    with (tmp_path / "basic_auth.ini").open("w") as out:
        ini.write(out)
    cache_logins(tmp_path / "basic_auth.ini")
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key-of-this-test",  # basic-auth refuses to start without one
    }
    mlflow_server = MlflowServer(tmp_path / "mlflow-server", app_name="basic-auth", env=env)
    mlflow_server.root.mkdir()
    mlflow_server.start()
    yield mlflow_server
    mlflow_server.stop()


def login(monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    """Make the MLflow client send `user`'s credentials (read per request), as the pods' Secret env does."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1] if user == "admin" else f"{user}-password")


def admin_post(uri: str, path: str, body: dict[str, str]) -> None:
    response = httpx.post(f"{uri}{path}", json=body, auth=ADMIN, timeout=30)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"


def create_login(uri: str, user: str, model: str, on_model: str, experiment_id: str, on_experiment: str) -> None:
    """Create `user` (password `<user>-password`) with `on_model` on the registered model, `on_experiment` on one
    experiment: the two grants manifests/README.md documents for each of the platform's logins."""
    admin_post(uri, CREATE_USER, {"username": user, "password": f"{user}-password"})
    for resource_type, resource_id, granted in (
        ("registered_model", model, on_model),
        ("experiment", experiment_id, on_experiment),
    ):
        grant = {"resource_type": resource_type, "resource_id": resource_id, "permission": granted}
        admin_post(uri, GRANT, {"username": user, **grant})


def register_version(uri: str, tmp_path: Path, model: str = MODEL, experiment: str = "training") -> tuple[str, str]:
    """As admin: one run with a tiny model directory, registered as version 1 with the alias champion."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = client.create_experiment(experiment)
    run_id = client.create_run(experiment_id).info.run_id
    client.log_artifacts(run_id, str(model_dir), "model")
    client.create_registered_model(model)
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version(model, source, run_id=run_id).version
    client.set_registered_model_alias(model, "champion", version)
    return experiment_id, str(version)


def assert_denied(call: Callable[..., object], *args: str) -> None:
    with pytest.raises(MlflowException) as refused:
        call(*args)
    assert refused.value.error_code == "PERMISSION_DENIED", refused.value


def test_the_reader_reads_and_downloads_and_only_the_controller_moves_aliases_and_tags(
    server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = (ROOT / "manifests" / "README.md").read_text()
    for documented in (CREATE_USER, GRANT, *LOGINS, '\\"resource_type\\": \\"registered_model\\"'):
        assert documented in docs, f"manifests/README.md grants the logins this way: {documented}"
    login(monkeypatch, "admin")
    experiment_id, version = register_version(server.uri, tmp_path)
    for user, permission in LOGINS.items():
        create_login(server.uri, user, MODEL, permission, experiment_id, "READ")
    client = MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)

    login(monkeypatch, "plinth-reader")  # what a serving pod does: resolve the alias, download the version's files
    assert client.get_model_version_by_alias(MODEL, "champion").version == version
    files = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri(MODEL, version),
        dst_path=str(tmp_path / "served"),
        tracking_uri=server.uri,
    )
    assert (Path(files) / "MLmodel").read_text() == "flavors: {}\n"
    assert_denied(client.set_registered_model_alias, MODEL, "serving-staging", version)
    assert_denied(client.set_model_version_tag, MODEL, version, "plinth.rollout.staging.status", "promoted")
    assert_denied(client.delete_registered_model_alias, MODEL, "champion")

    login(monkeypatch, "plinth-controller")  # what the rollout controller does on promotion
    client.set_registered_model_alias(MODEL, "serving-staging", version)
    client.set_model_version_tag(MODEL, version, "plinth.rollout.staging.status", "promoted")
    assert client.get_model_version_by_alias(MODEL, "serving-staging").version == version
    assert client.get_model_version(MODEL, version).tags == {"plinth.rollout.staging.status": "promoted"}
    assert_denied(client.delete_registered_model, MODEL)  # EDIT, not MANAGE
    # The rollout's history and timeline go to its own run in an experiment the controller creates and owns,
    # never onto the training run (READ only: the gate's evidence stays as training left it).
    recorder = RolloutRecorder(client, MODEL, version, "staging")
    recorder.begin("0")
    assert recorder.finish(PROMOTED, "all steps passed")
    tags = client.get_model_version(MODEL, version).tags
    assert tags["plinth.rollout.staging.timeline"].startswith("runs:/")
    history_run = client.get_run(tags["plinth.rollout.staging.history"].split("/")[1])
    assert client.get_experiment(history_run.info.experiment_id).name == ROLLOUT_EXPERIMENT
    training_run = client.get_model_version(MODEL, version).run_id
    assert_denied(client.log_param, training_run, "tampered", "1")

    login(monkeypatch, "nobody")  # an unknown login sees nothing
    with pytest.raises(MlflowException):
        client.get_model_version(MODEL, version)


def test_the_trigger_receiver_records_triggers_but_cannot_move_an_alias_or_write_a_tag(
    server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = (ROOT / "manifests" / "README.md").read_text()
    for documented in (
        f'\\"username\\": \\"{TRIGGERS_LOGIN}\\"',
        f'{{\\"name\\": \\"{TRIGGER_EXPERIMENT}\\"}}',
        '\\"resource_id\\": \\"$TRIGGERS_EXPERIMENT_ID\\", \\"permission\\": \\"EDIT\\"',
        '\\"resource_id\\": \\"plinth-classifier\\", \\"permission\\": \\"READ\\"',
    ):
        assert documented in docs, f"manifests/README.md grants the receiver's login this way: {documented}"
    login(monkeypatch, "admin")
    _, version = register_version(server.uri, tmp_path, TRIGGERED_MODEL, "training-of-triggered")
    client = MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)
    triggers_experiment = client.create_experiment(TRIGGER_EXPERIMENT)  # the admin creates it: the login only EDITs
    create_login(server.uri, TRIGGERS_LOGIN, TRIGGERED_MODEL, "READ", triggers_experiment, "EDIT")
    client.set_model_version_tag(TRIGGERED_MODEL, version, "plinth.rollout.prod.status", "in_progress")

    login(monkeypatch, TRIGGERS_LOGIN)
    record = TriggerRecord(client, TRIGGERED_MODEL)
    starter = LocalStarter(tmp_path / "logs", [sys.executable, "-c", "pass"])
    actor = Actor(record, starter, Guardrails())
    drift = Trigger("input_drift", "PSI above 0.25", {"psi.x": 0.4})
    held = actor.act(drift)  # READ on the model is enough to see the rollout in progress; the trigger is recorded
    assert (held.decision.action, held.decision.reason) == (
        "coalesce",
        f"rollout of v{version} in progress: input_drift coalesced",
    )
    assert client.get_run(held.record_id).data.tags["plinth.trigger.decision"] == "coalesce"

    login(monkeypatch, "admin")
    client.set_model_version_tag(TRIGGERED_MODEL, version, "plinth.rollout.prod.status", "promoted")
    login(monkeypatch, TRIGGERS_LOGIN)
    started = actor.act(drift)  # the guard rails' state is written (lease, day count) and read back
    assert started.decision.action == START, started.decision
    assert starter.wait(started.run, timeout=30) == 0
    history = record.read()
    assert history.in_progress is not None
    assert history.in_progress.run == started.run
    assert sum(history.runs_by_day.values()) == 1

    assert_denied(client.set_registered_model_alias, TRIGGERED_MODEL, "champion", version)
    assert_denied(client.set_registered_model_alias, TRIGGERED_MODEL, "serving-prod", version)
    assert_denied(client.delete_registered_model_alias, TRIGGERED_MODEL, "champion")
    assert_denied(client.set_model_version_tag, TRIGGERED_MODEL, version, "plinth.rollout.prod.status", "promoted")
    assert_denied(client.set_registered_model_tag, TRIGGERED_MODEL, "plinth.trigger.last_started", "forged")
    assert client.get_model_version(TRIGGERED_MODEL, version).tags == {"plinth.rollout.prod.status": "promoted"}
    assert client.get_registered_model(TRIGGERED_MODEL).tags == {}  # nothing of the history on the model


def test_the_experiment_loop_records_its_decision_but_cannot_move_an_alias(
    server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The chart's decision loop (`experiment.decision.mlflowCredentialsSecret`): EDIT on plinth-experiments only."""
    docs = (ROOT / "manifests" / "README.md").read_text()
    for documented in (
        f'\\"username\\": \\"{EXPERIMENTS_LOGIN}\\"',
        f'{{\\"name\\": \\"{EXPERIMENTS}\\"}}',
        '\\"resource_id\\": \\"$EXPERIMENTS_EXPERIMENT_ID\\", \\"permission\\": \\"EDIT\\"',
    ):
        assert documented in docs, f"manifests/README.md grants the loop's login this way: {documented}"
    login(monkeypatch, "admin")
    _, first = register_version(server.uri, tmp_path, EXPERIMENTED_MODEL, "training-of-experimented")
    client = MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)
    registered = client.get_model_version(EXPERIMENTED_MODEL, first)
    second = client.create_model_version(EXPERIMENTED_MODEL, registered.source, run_id=registered.run_id)
    client.set_registered_model_alias(EXPERIMENTED_MODEL, "challenger", second.version)
    experiment_id = client.create_experiment(EXPERIMENTS)
    create_login(server.uri, EXPERIMENTS_LOGIN, EXPERIMENTED_MODEL, "READ", experiment_id, "EDIT")
    store = PredictionStore(str(tmp_path / "predictions.sqlite"), 86_400.0)
    began = time.time()
    labelled(store, first, right=60, wrong=40, model=EXPERIMENTED_MODEL)
    labelled(store, str(second.version), right=95, wrong=5, model=EXPERIMENTED_MODEL)

    login(monkeypatch, EXPERIMENTS_LOGIN)
    spec = write_spec(tmp_path, variants=[
        {"name": "a", "alias": "champion", "weight": 50}, {"name": "b", "alias": "challenger", "weight": 50},
    ])  # fmt: skip
    argv = ["run", "--spec", spec, "--model-name", EXPERIMENTED_MODEL, "--tracking-uri", server.uri]
    store_flags = ["--store", str(tmp_path / "predictions.sqlite"), "--since", str(began)]
    assert experiments_main([*argv, *store_flags, "--prometheus", GONE]) == 0
    assert "DECISION: winner (b)" in capsys.readouterr().out
    (run,) = client.search_runs([experiment_id])
    assert run.data.tags["plinth.experiment.winner"] == "b"
    assert {artifact.path for artifact in client.list_artifacts(run.info.run_id, "experiment")} == {
        "experiment/cluster-ab.json",
        "experiment/cluster-ab.png",
    }
    assert_denied(client.set_registered_model_alias, EXPERIMENTED_MODEL, "champion", str(second.version))
    assert_denied(client.set_model_version_tag, EXPERIMENTED_MODEL, first, "plinth.rollout.prod.status", "promoted")
