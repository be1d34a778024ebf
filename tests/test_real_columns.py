"""Real columns (issue 23, part 4): mostly-empty columns are kept with a missing indicator or dropped, not refused.

A house-price table like the one users brought (2,930 rows; a garage's age empty for 60 % of the houses, a
pool's area for 96 %) gets a first model with the default limits: validate decides, per column, and says so;
the profile carries the decision to the candidates and to the signature, so a dropped column is no request
field. A missing share that changes against the champion's still fails, and every refusal names its flag.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.common.features import split_target
from components.common.modeling import signature
from components.common.profile import ReferenceProfile
from components.train_sklearn.core import build_model
from components.validate.core import Thresholds, validate
from pipelines.run_local import DATA_CHECKS, floor_parameter, parse_args
from pipelines.training.compute import ComputeTarget
from pipelines.training.pipeline import build_pipeline

ROWS = 2930


def house_table(
    rows: int = ROWS, seed: int = 3, garage_missing: float = 0.6, pool_missing: float = 0.96
) -> pd.DataFrame:
    """Return houses whose price depends on the area, the quality, the neighbourhood and whether there is a garage."""
    rng = np.random.default_rng(seed)
    area = rng.normal(1500, 400, rows).clip(400)
    quality = rng.integers(1, 11, rows)
    neighbourhood = rng.choice(["north", "old town", "riverside", "hills"], rows)
    has_garage = rng.random(rows) >= garage_missing
    has_pool = rng.random(rows) >= pool_missing
    price = 50 * area + 9000 * quality + 25000 * has_garage + 30000 * (neighbourhood == "hills")
    frame = pd.DataFrame(
        {
            "area": area,
            "quality": quality,
            "neighbourhood": pd.Series(neighbourhood, dtype=object),
            "garage_age": np.where(has_garage, rng.uniform(0, 60, rows), np.nan),
            "pool_area": np.where(has_pool, rng.uniform(20, 80, rows), np.nan),
            "price": price + rng.normal(0, 15000, rows),
        }
    )
    return frame


def detail(outcome, column: str, rule: str) -> str:
    return next(c.detail for c in outcome.report.checks if (c.column, c.rule) == (column, rule))


@pytest.fixture(scope="module")
def houses() -> tuple[pd.DataFrame, ReferenceProfile]:
    frame = house_table()
    outcome = validate(frame, "price", None)
    assert outcome.profile is not None, outcome.report.summary()
    return frame, outcome.profile


def test_a_first_model_keeps_a_mostly_empty_column_with_an_indicator_and_drops_an_almost_empty_one(houses) -> None:
    frame, profile = houses
    outcome = validate(frame, "price", None)
    garage, pool = detail(outcome, "garage_age", "missing_values"), detail(outcome, "pool_area", "missing_values")
    assert garage.startswith("6")
    assert "kept with a missing indicator" in garage
    assert "--indicator-missing-share" in garage
    assert pool.startswith("9")
    assert "dropped, not a model input" in pool
    assert "--max-missing-share" in pool
    assert "kept" in detail(outcome, "area", "missing_values")
    assert profile.features["garage_age"].missing_indicator
    assert not profile.features["area"].missing_indicator
    assert "pool_area" not in profile.features
    assert profile.dropped == {"pool_area": pytest.approx(0.96, abs=0.01)}
    assert ReferenceProfile.from_dict(profile.to_dict()) == profile  # the decisions travel with the model


def test_the_candidate_learns_from_the_indicator_and_the_contract_has_no_dropped_field(houses) -> None:
    frame, profile = houses
    features, price = split_target(frame, profile)
    assert list(features.columns) == ["area", "quality", "neighbourhood", "garage_age"]
    model = build_model(profile, seed=0).fit(features, price)
    outputs = list(model[0].get_feature_names_out())
    assert "indicated__missingindicator_garage_age" in outputs
    inputs = signature(model, features, profile).inputs
    assert [spec.name for spec in inputs.inputs] == profile.feature_names  # no pool_area: not a request field
    assert all(not spec.required for spec in inputs.inputs)
    no_garage = features.head(200).assign(garage_age=np.nan)
    with_garage = features.head(200).assign(garage_age=30.0)
    gap = float(np.mean(model.predict(with_garage) - model.predict(no_garage)))
    assert gap > 15000  # the indicator carries the garage's 25,000: a median fill alone would not


def test_a_missing_share_that_changes_against_the_champion_still_fails(houses) -> None:
    _frame, reference = houses
    fuller = house_table(seed=4, garage_missing=0.1)
    outcome = validate(fuller, "price", reference)
    failed = {(c.column, c.rule) for c in outcome.report.failures}
    assert ("garage_age", "missing_values_match_reference") in failed
    assert ("garage_age", "drift_psi") in failed
    assert "--max-psi" in outcome.report.summary()
    pool_back = house_table(seed=4, pool_missing=0.2)
    schema = validate(pool_back, "price", reference)
    summary = schema.report.summary()
    assert "extra ['pool_area']" in summary
    assert "the champion dropped it (96" in summary
    assert "--max-missing-share" in summary
    same = validate(house_table(seed=4), "price", reference)
    assert same.report.passed, same.report.summary()
    expected = validate(fuller, "price", reference, Thresholds(expect_drift=True))
    assert expected.report.passed  # a drift-triggered retrain reports the change without failing on it


@pytest.mark.parametrize(
    ("change", "limits", "flag"),
    [
        (lambda f: f.head(40), Thresholds(), "--min-rows"),
        (lambda f: f.assign(area=f.area * 3), None, "--max-out-of-range-share"),
    ],
    ids=["min-rows", "out-of-range"],
)
def test_a_refusal_names_the_flag_that_changes_it(houses, change, limits, flag) -> None:
    frame, reference = houses
    outcome = validate(change(frame), "price", reference if limits is None else None, limits)
    assert not outcome.report.passed
    assert flag in outcome.report.summary()


def test_every_limit_is_a_make_train_flag_and_a_pipeline_parameter_with_the_same_default() -> None:
    defaults = parse_args([])
    parameters = build_pipeline(ComputeTarget(gpu=False)).component_spec.inputs
    assert parameters is not None
    limits = {name for name in Thresholds.__dataclass_fields__ if name != "expect_drift"}
    assert {name for name, _, _ in DATA_CHECKS} == limits
    for name in limits:
        assert getattr(defaults, name) == getattr(Thresholds(), name) == parameters[name].default, name
    assert parse_args(["--max-missing-share", "0.8"]).max_missing_share == 0.8
    for floor in ("min_roc_auc", "min_accuracy", "min_r2"):  # opt-in: none unless given
        assert floor_parameter(getattr(defaults, floor)) == parameters[floor].default == ""
    assert floor_parameter(parse_args(["--min-roc-auc", "0.9"]).min_roc_auc) == "0.9"
    with pytest.raises(ValueError, match="--indicator-missing-share"):
        Thresholds(max_missing_share=0.3, indicator_missing_share=0.5)
