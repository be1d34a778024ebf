"""The compiled preprocessing answers what the fitted pipeline answers: every candidate, every task, mixed rows.

The table is the high-cardinality merchant table (numbers, text, booleans, a 7-level integer category and
1,000 merchants, target-encoded for the linear model and the MLP, native categories for XGBoost) plus a
numeric integer column, with nulls in every column that may be null. Rows sent to the model add unseen
categories in every categorical column and nulls everywhere they are allowed, and are scored many at a time
and one at a time, as the batcher does.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model
from prometheus_client import REGISTRY
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from components.common import modeling
from components.common.features import category_frame, split_target
from components.common.profile import ReferenceProfile
from components.common.tests.test_high_cardinality import CANDIDATES, SAVED, merchant_table
from components.ingest.core import load_source
from components.validate.core import validate
from serving.model_service.columns import Column, FrameBuilder, read_columns
from serving.model_service.compiled import NotCompiled, compile_model
from serving.model_service.predictor import FastPredictor
from serving.model_service.registry import ModelRef
from serving.rollout.edges.sample_rows import json_value

TARGETS = {"binary": "churned", "multiclass": "segment", "regression": "spend"}
# Values never seen in training, one per categorical column, and the columns that may be null.
UNSEEN = {"plan": "enterprise", "region": "mars", "has_card": None, "support_calls": 99, "merchant": "m9999"}
ROWS = 300


def mixed_frame() -> pd.DataFrame:
    """The merchant table plus a numeric integer column, a 3-class and a numeric target; nulls where allowed."""
    frame = merchant_table(rows=1600)
    rng = np.random.default_rng(11)
    frame["tenure"] = rng.integers(0, 60, len(frame))  # an integer with many levels: numeric
    frame.loc[rng.random(len(frame)) < 0.05, "merchant"] = None
    frame.loc[rng.random(len(frame)) < 0.05, "region"] = None
    calls = frame["support_calls"].to_numpy()
    frame["segment"] = np.where(calls >= 4, "at-risk", np.where(frame["plan"] == "premium", "loyal", "steady"))
    frame["spend"] = (
        frame["tenure"] * 3.0 + calls * 10.0 + (frame["plan"] == "plus") * 25.0 + rng.normal(0, 5, len(frame))
    )
    return frame


@cache
def table(task: str) -> tuple[ReferenceProfile, pd.DataFrame, pd.Series]:
    """Validate the mixed frame for `task`'s target; return its profile and typed features and target."""
    frame = mixed_frame().drop(columns=[t for k, t in TARGETS.items() if k != task])
    outcome = validate(frame, TARGETS[task], None)
    assert outcome.profile is not None, outcome.report.summary()
    assert outcome.profile.task.kind == task
    return outcome.profile, *split_target(frame, outcome.profile)


@cache
def fitted(candidate: str, task: str) -> tuple[Any, list[Column], ReferenceProfile, pd.DataFrame]:
    """Fit `candidate` on `task` as the train step saves it; return it with its signature's columns."""
    profile, features, target = table(task)
    model = SAVED[candidate](CANDIDATES[candidate](profile).fit(features, target))
    columns = read_columns(modeling.signature(model, features, profile), profile)
    return model, columns, profile, features


def instances(features: pd.DataFrame, columns: list[Column]) -> list[dict[str, Any]]:
    """Return ROWS request instances: unseen categories and nulls in every column that takes them."""
    rows = [{k: json_value(v) for k, v in row.items()} for row in features.head(ROWS).to_dict(orient="records")]
    for offset, (name, value) in enumerate(UNSEEN.items()):
        rows[offset][name] = value
    for offset, column in enumerate(c for c in columns if c.optional):
        rows[10 + offset][column.name] = None
        rows[20][column.name] = None  # one row null wherever a null is allowed
    return rows


def numbers(columns: list[Column]) -> list[str]:
    return [c.name for c in columns if c.dtype in ("float64", "int64")]


def test_the_table_holds_every_kind_of_column():
    profile, features, _ = table("binary")
    kinds = {name: (stats.kind, stats.optional, stats.high_cardinality) for name, stats in profile.features.items()}
    assert kinds["merchant"] == ("categorical", True, True)
    assert kinds["tenure"] == ("numeric", False, False)
    assert features["tenure"].dtype == np.float64
    assert {name for name, (_, optional, _) in kinds.items() if optional} == {
        *("age", "income", "plan", "has_card", "merchant", "region"),
    }


@pytest.mark.parametrize("task", sorted(TARGETS))
@pytest.mark.parametrize("candidate", sorted(CANDIDATES))
def test_compiled_path_answers_what_the_fitted_pipeline_answers(candidate: str, task: str):
    model, columns, profile, features = fitted(candidate, task)
    compiled = compile_model(model, [c.name for c in columns], numbers(columns), profile.task)
    assert compiled is not None
    frames = FrameBuilder(columns)
    rows = instances(features, columns)
    batch = frames.build(rows)
    preprocessed = model[:-1].transform(batch.frame)
    preprocessed = preprocessed.toarray() if hasattr(preprocessed, "toarray") else preprocessed
    np.testing.assert_array_equal(compiled.features.transform(batch), preprocessed)  # the matrix, bit for bit
    expected = modeling.predict_output(model, profile.task, batch.frame)
    np.testing.assert_allclose(compiled.predict(batch), expected, rtol=1e-9, atol=1e-12)
    for index in range(25):  # one row at a time, as a lone request is scored (the unseen and null rows first)
        single = frames.build(rows[index : index + 1])
        # The pipeline's own answer for the lone row: the MLP's float32 products differ in the last bits by batch.
        alone = modeling.predict_output(model, profile.task, single.frame)
        np.testing.assert_allclose(compiled.predict(single), alone, rtol=1e-9, atol=1e-12)


def test_an_all_number_model_compiles_its_scaler():
    frame = load_source("sklearn:breast_cancer")
    profile = validate(frame, "target", None).profile
    assert profile is not None
    features, target = split_target(frame, profile)
    model = SAVED["sklearn"](CANDIDATES["sklearn"](profile).fit(features, target))
    columns = read_columns(modeling.signature(model, features, profile), profile)
    batch = FrameBuilder(columns).build(
        [{k: float(v) for k, v in r.items()} for r in features.head(50).to_dict("records")]
    )
    assert batch.block is not None
    compiled = compile_model(model, [c.name for c in columns], numbers(columns), profile.task)
    assert compiled is not None
    np.testing.assert_allclose(compiled.predict(batch), model.predict_proba(batch.frame), rtol=1e-9, atol=1e-12)


def unknown_step_model(candidate_task: str = "binary") -> tuple[Pipeline, list[Column], ReferenceProfile, pd.DataFrame]:
    """A pipeline whose numeric step is a MinMaxScaler, which the compiler does not know."""
    profile, features, target = table(candidate_task)
    numeric = [name for name, stats in profile.features.items() if stats.is_numeric]
    categorical = [name for name in profile.features if name not in numeric]
    names = FunctionTransformer(category_frame, feature_names_out="one-to-one")
    encoder = Pipeline([("names", names), ("one_hot", OneHotEncoder(handle_unknown="ignore"))])
    transformer = ColumnTransformer([("numeric", MinMaxScaler(), numeric), ("categorical", encoder, categorical)])
    nan_free = features.fillna({name: 0.0 for name in numeric})
    model = Pipeline([("features", transformer), ("learn", LogisticRegression(max_iter=200))]).fit(nan_free, target)
    return model, read_columns(modeling.signature(model, nan_free, profile), profile), profile, nan_free


def test_missing_indicators_and_whole_matrix_steps_compile():
    profile, features, target = table("regression")
    numeric = [name for name, stats in profile.features.items() if stats.is_numeric]
    categorical = [name for name in profile.features if name not in numeric]
    names = FunctionTransformer(category_frame, feature_names_out="one-to-one")
    indicated = Pipeline(
        [("impute", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())]
    )
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64)
    transformer = ColumnTransformer(
        [
            ("indicated", indicated, numeric),
            ("categorical", Pipeline([("names", names), ("codes", ordinal)]), categorical),
        ]
    )
    model = Pipeline([("features", transformer), ("again", StandardScaler()), ("learn", Ridge())]).fit(features, target)
    columns = read_columns(modeling.signature(model, features, profile), profile)
    compiled = compile_model(model, [c.name for c in columns], numbers(columns), profile.task)
    assert compiled is not None
    batch = FrameBuilder(columns).build(instances(features, columns))
    assert compiled.features.width == len(numeric) + 2 + len(categorical)  # age and income had gaps: flagged
    np.testing.assert_array_equal(compiled.features.transform(batch), model[:-1].transform(batch.frame))
    np.testing.assert_allclose(compiled.predict(batch), model.predict(batch.frame), rtol=1e-9, atol=1e-12)


def test_a_step_the_compiler_does_not_know_is_named():
    model, columns, profile, _ = unknown_step_model()
    with pytest.raises(NotCompiled, match="MinMaxScaler"):
        compile_model(model, [c.name for c in columns], numbers(columns), profile.task)
    dropped = Pipeline([("names", FunctionTransformer(category_frame)), ("one_hot", OneHotEncoder(drop="first"))])
    plan = table("binary")[1][["plan"]]
    with_drop = Pipeline([("features", ColumnTransformer([("c", dropped, ["plan"])])), ("learn", LogisticRegression())])
    with_drop.fit(plan, table("binary")[2])
    with pytest.raises(NotCompiled, match="dropped columns"):
        compile_model(with_drop, ["plan"], [], profile.task)


def saved_ref(
    model: Any, columns: list[Column], profile: ReferenceProfile, features: pd.DataFrame, where: Path
) -> ModelRef:
    modeling.save_model(model, str(where), features, profile, "sklearn")
    return ModelRef("compiled-test", where.name, where, Model.load(str(where)), columns, profile)


def preprocessing_path(ref: ModelRef) -> str:
    paths = [
        sample.labels["path"]
        for metric in REGISTRY.collect()
        if metric.name == "plinth_model_preprocessing"
        for sample in metric.samples
        if sample.labels["model_version"] == ref.version and sample.value == 1
    ]
    assert len(paths) == 1, paths
    return paths[0]


def test_the_service_predictor_takes_the_compiled_path_and_falls_back_for_unknown_steps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, "plinth.model_service")
    model, columns, profile, features = fitted("sklearn", "multiclass")
    ref = saved_ref(model, columns, profile, features, tmp_path / "compiled")
    predictor = FastPredictor(ref, profile.task)
    predictor.load()
    batch = FrameBuilder(columns).build(instances(features, columns))
    expected = predictor.warm_up(batch)
    assert predictor.path == "compiled"
    assert preprocessing_path(ref) == "compiled"
    np.testing.assert_allclose(predictor.predict(batch), expected, rtol=1e-9, atol=1e-12)
    assert not caplog.records

    model, columns, profile, features = unknown_step_model()
    ref = saved_ref(model, columns, profile, features, tmp_path / "generic")
    predictor = FastPredictor(ref, profile.task)
    predictor.load()
    rows = [{k: json_value(v) for k, v in row.items()} for row in features.head(20).to_dict(orient="records")]
    batch = FrameBuilder(columns).build(rows)
    expected = predictor.warm_up(batch)
    assert predictor.path == "generic"
    assert preprocessing_path(ref) == "generic"
    np.testing.assert_array_equal(predictor.predict(batch), model.predict_proba(batch.frame))
    np.testing.assert_array_equal(expected, model.predict_proba(batch.frame))
    [record] = caplog.records
    assert "MinMaxScaler" in record.getMessage()
    assert "scikit-learn's own preprocessing" in record.getMessage()
