"""plinth's models load without running code from their files; a pickle loads only where pickles are allowed."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from components.common import modeling
from components.train_sklearn.core import build_model as build_sklearn
from components.train_torch.core import build_model as build_torch
from components.train_xgboost.core import build_model as build_xgboost
from components.train_xgboost.core import for_cpu_inference

ALLOW_PICKLE = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
CANDIDATES = {
    "sklearn": lambda profile: build_sklearn(profile, seed=0),
    "xgboost": lambda profile: build_xgboost(profile, seed=0, device="cpu", n_estimators=5),
    "torch": lambda profile: build_torch(profile, seed=0, device="cpu", epochs=5),
}

# Named, not inferred: MLflow infers requirements by reloading the model in a subprocess (seconds per save),
# and no test here is about requirements.
REQUIREMENTS = ["scikit-learn"]


def doubled(values: np.ndarray) -> np.ndarray:
    """A function of someone else's: nothing in plinth's trusted list names it."""
    return np.asarray(values) * 2


@pytest.fixture
def pickles_disallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_PICKLE, "false")


@pytest.mark.parametrize("table_name", ["mixed", "multiclass", "regression"])
@pytest.mark.parametrize("candidate", sorted(CANDIDATES))
def test_every_candidate_round_trips_with_pickles_disallowed(
    tables, tmp_path: Path, pickles_disallowed: None, candidate: str, table_name: str
) -> None:
    table = tables[table_name]
    model = CANDIDATES[candidate](table.profile).fit(table.x_train, table.y_train)
    if candidate == "xgboost":
        model = for_cpu_inference(model)
    path = tmp_path / "model"
    modeling.save_model(model, str(path), table.x_train, table.profile, candidate)

    assert (path / "model.skops").is_file()
    assert not (path / "model.pkl").exists()
    assert not modeling.is_pickle(Model.load(str(path / "MLmodel")))
    loaded = modeling.load_model(str(path))
    np.testing.assert_array_equal(
        modeling.predict_output(loaded, table.profile.task, table.x_test),
        modeling.predict_output(model, table.profile.task, table.x_test),
    )


def test_a_type_outside_plinths_list_is_refused_even_when_the_model_file_trusts_it(
    tmp_path: Path, pickles_disallowed: None
) -> None:
    features = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = make_pipeline(FunctionTransformer(doubled), LogisticRegression()).fit(features, [0, 0, 1, 1])
    trusted_by_the_file = [f"{doubled.__module__}.{doubled.__qualname__}"]
    mlflow.sklearn.save_model(
        model,
        str(tmp_path / "m"),
        serialization_format="skops",
        skops_trusted_types=trusted_by_the_file,
        pip_requirements=REQUIREMENTS,
    )
    assert Model.load(str(tmp_path / "m" / "MLmodel")).flavors["sklearn"]["skops_trusted_types"] == trusted_by_the_file

    with pytest.raises(ValueError, match=r"names types plinth does not trust.*doubled"):
        modeling.load_model(str(tmp_path / "m"))


def test_a_pickle_loads_only_where_pickles_are_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    features = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(features, [0, 0, 1, 1])
    path = tmp_path / "pickled"
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        pip_requirements=REQUIREMENTS,
    )
    assert modeling.is_pickle(Model.load(str(path / "MLmodel")))

    monkeypatch.setenv(ALLOW_PICKLE, "false")
    assert not modeling.pickle_allowed()
    with pytest.raises(MlflowException, match=ALLOW_PICKLE):
        modeling.load_model(str(path))

    monkeypatch.setenv(ALLOW_PICKLE, "true")
    assert modeling.pickle_allowed()
    np.testing.assert_array_equal(modeling.load_model(str(path)).predict(features), model.predict(features))


def test_a_model_without_the_sklearn_flavor_is_not_a_plinth_model(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: elsewhere\n")
    with pytest.raises(ValueError, match="not a plinth model"):
        modeling.load_model(str(tmp_path))


def test_loading_a_registered_version_leaves_its_stored_files_as_they_were_signed(tables, tmp_path: Path) -> None:
    """MLflow writes `registered_model_meta` into the directory it downloads a `models:/` URI to; with a local
    artifact store and no destination that is the stored version itself, which its signature would then refuse."""
    from components.common.tracking import connect, ensure_experiment

    table = tables["multiclass"]
    model = CANDIDATES["sklearn"](table.profile).fit(table.x_train, table.y_train)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = connect(uri)
    experiment = ensure_experiment(client, "serialization", uri)
    with mlflow.start_run(experiment_id=experiment) as run:
        modeling.save_model(model, str(tmp_path / "model"), table.x_train, table.profile, "sklearn")
        mlflow.log_artifacts(str(tmp_path / "model"), "model")
    client.create_registered_model("stored")
    version = client.create_model_version("stored", f"{run.info.artifact_uri}/model", run.info.run_id)
    stored = Path(client.get_model_version_download_uri("stored", version.version).removeprefix("file://"))
    before = sorted(path.name for path in stored.iterdir())
    loaded = modeling.load_model(f"models:/stored/{version.version}")
    assert sorted(path.name for path in stored.iterdir()) == before, "nothing written into the stored version"
    np.testing.assert_array_equal(loaded.predict(table.x_test), model.predict(table.x_test))
