"""The gate scores the champion by loading it; a champion that is a pickle is refused, never unpickled."""

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from components.common import modeling, tracking
from components.common.profile import ReferenceProfile
from components.gate.core import ChampionScoringError, champion_scores
from components.train_sklearn.core import build_model

ALLOW_PICKLE = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


def register_champion(
    tracking_uri: str,
    name: str,
    model: modeling.Estimator,
    sample: pd.DataFrame,
    profile: ReferenceProfile,
    pickled: bool,
    decision: dict[str, Any] | None = None,
) -> None:
    """Register `model` as champion: plinth's way (skops, `decision` stored), or with the same metadata pickled."""
    client = tracking.connect(tracking_uri)
    experiment = tracking.ensure_experiment(client, "gate", tracking_uri)
    with mlflow.start_run(experiment_id=experiment):
        if pickled:
            uri = mlflow.sklearn.log_model(
                model,
                name="model",
                metadata=modeling.model_metadata(profile, "sklearn"),
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                pip_requirements=modeling.pip_requirements(()),
            ).model_uri
        else:
            uri = modeling.log_model(model, sample, profile, "sklearn", decision=decision)
    version = mlflow.register_model(uri, name).version
    client.set_registered_model_alias(name, tracking.CHAMPION, version)


@pytest.mark.parametrize("pickled", [False, True])
def test_the_champion_is_scored_only_when_it_is_not_a_pickle(
    tables: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pickled: bool
) -> None:
    table = tables["binary"]
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    model = build_model(table.profile, seed=0).fit(table.x_train, table.y_train)
    register_champion(tracking_uri, "champ", model, table.x_train, table.profile, pickled)
    test_path = tmp_path / "test.parquet"
    pd.concat([table.x_test, table.y_test], axis=1).to_parquet(test_path)
    monkeypatch.setenv(ALLOW_PICKLE, "false")

    if pickled:
        with pytest.raises(ChampionScoringError, match=f"champion v1 cannot be scored.*{ALLOW_PICKLE}"):
            champion_scores(tracking_uri, "champ", str(test_path), table.profile.task)
    else:
        scores, version = champion_scores(tracking_uri, "champ", str(test_path), table.profile.task)
        assert version == "1"
        assert scores is not None
        assert scores["roc_auc"] > 0.9
