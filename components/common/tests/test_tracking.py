import os

import mlflow
import pytest

from components.common import tracking


def test_connect_sets_the_default_in_memory_and_leaves_the_environment_alone(tmp_path, monkeypatch):
    for name in tracking.MLFLOW_URI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = tracking.connect(uri)
    assert mlflow.get_tracking_uri() == uri
    assert mlflow.get_registry_uri() == uri
    assert client._registry_uri == uri
    assert not any(name in os.environ for name in tracking.MLFLOW_URI_VARIABLES)


def test_connect_keeps_a_variable_the_user_set(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    tracking.connect(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"


@pytest.mark.parametrize(
    ("uri", "root"), [("http://host:5000", None), ("sqlite:////data/mlflow.db", "file:///data/mlartifacts")]
)
def test_artifacts_of_a_sqlite_store_live_beside_it(uri, root):
    assert tracking.artifact_root(uri) == root
