"""What the rollout reads about a version before it starts, and the traffic rows made from it (real SQLite registry)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from components.common.profile import feature_psi
from components.common.tracking import CHALLENGER, CHAMPION, connect
from serving.embedded.rollout import EXIT_USAGE, main
from serving.embedded.train_drill import DrillData, register_drill_model, register_plain_model
from serving.rollout.edges.inspect_model import ModelFacts, inspect_version
from serving.rollout.edges.sample_rows import TrafficError, traffic_rows

CHURN = DrillData("synthetic:churn", "churned")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def churn(store: str) -> ModelFacts:
    version = register_drill_model(store, "churn", seed=3, data=CHURN, train_fraction=0.5)
    return inspect_version(connect(store), store, "churn", version)


@pytest.fixture(scope="module")
def notebook(store: str) -> ModelFacts:
    version = register_plain_model(store, "notebook", seed=3)
    return inspect_version(connect(store), store, "notebook", version)


def test_a_plinth_model_says_its_task_profile_inputs_and_training_data(churn):
    assert churn.task == "binary"
    assert churn.has_profile is True
    assert churn.training_data == ("synthetic:churn", "churned")
    kinds = {column.name: (column.kind, column.required) for column in churn.inputs}
    # Every plinth input may be missing: each candidate imputes every feature (components/common/modeling.py).
    assert kinds["plan"] == ("string", False)
    assert kinds["support_calls"] == ("long", False)


def test_default_traffic_is_the_recorded_training_data_typed_as_the_signature(churn):
    rows, origin = traffic_rows(churn)
    assert origin == "rows of synthetic:churn, the data v1 was trained on"
    assert {tuple(row) for row in rows} == {tuple(column.name for column in churn.inputs)}
    assert all(isinstance(row["support_calls"], int) for row in rows)
    assert any(row["plan"] is None for row in rows)


def test_rows_drawn_from_a_profile_fit_it(churn):
    """Drawn rows have the training marginals: their input drift against the profile is small."""
    drawn, origin = traffic_rows(dataclasses.replace(churn, training_data=None), count=800)
    assert origin == "rows drawn from v1's reference profile"
    assert churn.profile is not None
    frame = pd.DataFrame(drawn)
    for name, stats in churn.profile.features.items():
        assert feature_psi(stats, frame[name].to_numpy()) < 0.1, name
    required = [column.name for column in churn.inputs if column.required]
    assert frame[required].notna().all().all()
    assert frame["plan"].isna().any()
    assert set(frame["region"]) <= set(churn.profile.features["region"].categories)
    assert all(isinstance(value, bool) for value in frame["has_card"].dropna())
    age = churn.profile.features["age"]
    assert age.minimum <= frame["age"].min()
    assert frame["age"].max() <= age.maximum


def test_a_notebook_model_is_unknown_where_it_does_not_say(notebook):
    assert (notebook.task, notebook.has_profile, notebook.training_data) == (None, False, None)
    assert notebook.example is not None
    assert len(notebook.example) == 5
    assert {column.kind for column in notebook.inputs} == {"double"}


def test_a_notebook_models_traffic_comes_from_its_input_example(notebook):
    rows, origin = traffic_rows(notebook, count=200)
    assert origin == "rows drawn from v1's input example (5 rows)"
    frame = pd.DataFrame(rows)
    assert list(frame.columns) == [column.name for column in notebook.inputs]
    assert notebook.example is not None
    low, high = notebook.example.min(), notebook.example.max()
    assert ((frame >= low) & (frame <= high)).all().all()
    assert frame.nunique().max() > 5  # spread over the example's range, not its five rows repeated


def test_an_explicit_source_wins_and_must_cover_the_inputs(notebook):
    rows, origin = traffic_rows(notebook, "sklearn:breast_cancer", "target")
    assert origin == "rows of sklearn:breast_cancer"
    assert len(rows) == 569
    assert "target" not in rows[0]
    with pytest.raises(TrafficError, match="sklearn:wine lacks input columns of notebook v1: mean_radius"):
        traffic_rows(notebook, "sklearn:wine", "target")


def test_no_profile_no_example_no_source_asks_for_a_source(store):
    version = register_plain_model(store, "bare", seed=4, input_example=False)
    facts = inspect_version(connect(store), store, "bare", version)
    with pytest.raises(TrafficError, match="pass --traffic-source"):
        traffic_rows(facts)


def test_a_canary_solving_another_task_is_refused_before_anything_starts(store, capsys):
    register_drill_model(store, "mixed", seed=5, train_fraction=0.3, alias=CHAMPION)
    register_drill_model(store, "mixed", seed=5, data=DrillData("sklearn:diabetes"), alias=CHALLENGER)
    argv = ["--model-name", "mixed", "--tracking-uri", store, "--metrics-port", "0", "--traffic", "10"]
    capsys.readouterr()
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err == (
        "plinth rollout: canary mixed v2 (regression) solves another task than the stable v1 (binary): "
        "its predictions cannot be compared or served in its place"
    )


def test_a_missing_alias_is_one_line_naming_the_registry(store, capsys):
    argv = ["--model-name", "nothing-here", "--tracking-uri", store, "--metrics-port", "0"]
    capsys.readouterr()
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("plinth rollout: no alias champion of nothing-here: ")
    assert err.endswith(f"(registry {store})")


def test_source_rows_are_json_values(churn):
    rows, _ = traffic_rows(churn, "synthetic:churn", "churned")
    values = [value for row in rows for value in row.values()]
    assert not any(isinstance(value, np.generic) for value in values)
    assert not any(isinstance(value, float) and np.isnan(value) for value in values)
