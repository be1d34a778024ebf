import json

import numpy as np
import pandas as pd
import pytest

from components.common.profile import build_profile
from components.common.task import BINARY, MULTICLASS, REGRESSION, infer_task
from components.ingest.core import load_source
from components.validate.core import Thresholds, expects_drift, validate


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return load_source("sklearn:breast_cancer")


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return load_source("synthetic:churn")


def failed(outcome) -> set[tuple[str, str]]:
    return {(check.column, check.rule) for check in outcome.report.failures}


def test_clean_data_passes_with_and_without_reference(frame):
    first = validate(frame, "target", None)
    assert first.report.passed
    assert first.task is not None
    assert first.task.kind == BINARY
    assert first.profile is not None
    assert validate(frame, "target", build_profile(frame, "target")).report.passed


@pytest.mark.parametrize(
    ("source", "target", "kind"),
    [
        ("sklearn:wine", "target", MULTICLASS),
        ("sklearn:diabetes", "target", REGRESSION),
        ("synthetic:churn", "churned", BINARY),
    ],
)
def test_every_task_and_column_kind_validates(source, target, kind):
    data = load_source(source)
    outcome = validate(data, target, None)
    assert outcome.report.passed, outcome.report.summary()
    assert outcome.profile is not None
    assert outcome.profile.task.kind == kind
    again = validate(data, target, outcome.profile)
    assert again.report.passed, again.report.summary()


def test_unknown_target_column(frame):
    outcome = validate(frame, "label", None)
    assert failed(outcome) == {("label", "target_present")}
    assert "mean_radius" in outcome.report.failures[0].detail


def test_a_numeric_column_with_broken_values_names_column_and_values(frame):
    bad = frame.astype({"mean_area": object})
    bad.loc[:4, "mean_area"] = "n/a"
    outcome = validate(bad, "target", None)
    assert failed(outcome) == {("mean_area", "numeric")}
    assert "'n/a'" in outcome.report.failures[0].detail
    declared = validate(bad, "target", None, Thresholds(max_categories=1000), categorical=["mean_area"])
    assert declared.report.passed, declared.report.summary()


def test_all_nan_column(frame):
    assert ("mean_area", "not_all_missing") in failed(validate(frame.assign(mean_area=np.nan), "target", None))


def test_a_mostly_missing_column_is_kept_with_an_indicator_or_dropped_not_refused(frame):
    bad = frame.copy()
    bad.loc[: int(len(bad) * 0.6), "mean_area"] = np.nan
    kept = validate(bad, "target", None)
    assert kept.profile is not None, kept.report.summary()
    assert kept.profile.features["mean_area"].missing_indicator
    dropped = validate(bad, "target", None, Thresholds(max_missing_share=0.5))
    assert dropped.profile is not None
    assert "mean_area" not in dropped.profile.features
    assert dropped.profile.dropped == {"mean_area": pytest.approx(0.6, abs=0.01)}


def test_infinite_values(frame):
    bad = frame.copy()
    bad.loc[0, "mean_area"] = np.inf
    assert ("mean_area", "finite") in failed(validate(bad, "target", None))


def test_single_class_cannot_be_classified(frame):
    outcome = validate(frame.assign(target=1), "target", None)
    assert ("target", "task") in failed(outcome)
    assert "at least 2 classes" in outcome.report.failures[0].detail


def test_ambiguous_target_fails_with_how_to_choose(frame):
    outcome = validate(frame.assign(target=frame.target.astype(float)), "target", None)
    assert failed(outcome) == {("target", "task")}
    assert "--task classification" in outcome.report.summary()
    assert validate(
        frame.assign(target=frame.target.astype(float)), "target", None, task="classification"
    ).report.passed


def test_starved_class(frame):
    bad = pd.concat([frame[frame.target == 1], frame[frame.target == 0].head(5)])
    outcome = validate(bad, "target", None)
    assert failed(outcome) == {("target", "min_class_rows")}  # the default: a count, not a share
    assert "smallest class '0' has 5 rows, limit 30 (min_class_rows, --min-class-rows)" in outcome.report.summary()
    outcome = validate(bad, "target", None, Thresholds(min_class_share=0.05, min_class_rows=5))
    assert failed(outcome) == {("target", "min_class_share")}  # opt-in
    assert "(min_class_share, --min-class-share)" in outcome.report.summary()


def test_a_fraud_like_minority_passes_the_defaults():
    rng = np.random.default_rng(0)
    fraud = pd.DataFrame({"amount": rng.normal(size=10_000), "target": (np.arange(10_000) < 300).astype(int)})
    outcome = validate(fraud, "target", None)  # 3 %: 300 rows of 10,000, no flag
    assert outcome.report.passed, outcome.report.summary()
    assert any(check.rule == "min_class_rows" and "'1' has 300 rows" in check.detail for check in outcome.report.checks)


def test_regression_target_must_vary():
    diabetes = load_source("sklearn:diabetes")
    outcome = validate(diabetes.assign(target=150.5), "target", None, task="regression")
    assert ("target", "not_constant") in failed(outcome)


def test_high_cardinality_text_is_marked_not_refused(churn):
    ids = churn.assign(customer=[f"c{i:05d}" for i in range(len(churn))])
    outcome = validate(ids, "churned", None)
    assert outcome.profile is not None
    assert not failed(outcome)
    assert outcome.profile.features["customer"].high_cardinality
    assert not outcome.profile.features["plan"].high_cardinality
    detail = next(c.detail for c in outcome.report.checks if (c.column, c.rule) == ("customer", "categories"))
    assert "1200 distinct values" in detail
    assert "'c00000'" in detail
    assert "target encoding" in detail


def test_drift_and_range_against_reference(frame):
    shifted = frame.assign(mean_radius=frame.mean_radius * 3)
    outcome = validate(shifted, "target", build_profile(frame, "target"))
    assert failed(outcome) == {("mean_radius", "within_reference_range"), ("mean_radius", "drift_psi")}


@pytest.mark.parametrize("kind", ["input_drift", "new_data"])
def test_a_retrain_triggered_by_drift_reports_the_drift_without_failing_on_it(frame, kind):
    shifted = frame.assign(mean_radius=frame.mean_radius * 3)
    limits = Thresholds(expect_drift=expects_drift(json.dumps({"kind": kind, "reason": "r"})))
    outcome = validate(shifted, "target", build_profile(frame, "target"), limits)
    assert outcome.report.passed
    psi = next(c for c in outcome.report.checks if (c.column, c.rule) == ("mean_radius", "drift_psi"))
    assert "expected: this run retrains on drifted data" in psi.detail
    # Schema and task still fail such a run: drift is expected, a broken table is not.
    assert ("(dataset)", "schema_matches_reference") in failed(
        validate(shifted.drop(columns=["mean_area"]), "target", build_profile(frame, "target"), limits)
    )


@pytest.mark.parametrize(
    "trigger", ["", "not json", '["a list"]', '{"kind": "schedule"}', '{"kind": "performance_decay"}']
)
def test_other_runs_still_fail_on_drift(trigger):
    assert not expects_drift(trigger)


def test_unseen_categories_and_category_drift_against_reference(churn):
    reference = build_profile(churn, "churned", infer_task(churn.churned))
    moved = churn.assign(region=["atlantis"] * 200 + list(churn.region[200:]))
    outcome = validate(moved, "churned", reference)
    assert failed(outcome) == {("region", "unseen_categories"), ("region", "drift_psi")}
    assert "'atlantis'" in outcome.report.summary()


def test_schema_kind_and_task_mismatch_against_reference(frame, churn):
    reference = build_profile(frame, "target")
    outcome = validate(frame.drop(columns=["mean_area"]), "target", reference)
    assert ("(dataset)", "schema_matches_reference") in failed(outcome)
    assert "mean_area" in outcome.report.summary()
    as_text = frame.assign(mean_area=frame.mean_area.round(-2).astype(int).astype(str))
    assert ("mean_area", "kind_matches_reference") in failed(validate(as_text, "target", reference))
    three = frame.assign(target=frame.index % 3)
    assert ("target", "task_matches_reference") in failed(validate(three, "target", reference))


def test_report_lists_failures_first_and_never_shows_numpy_reprs(frame):
    bad = pd.concat([frame[frame.target == 1], frame[frame.target == 0].head(5)])
    markdown = validate(bad, "target", None).report.to_markdown()
    assert markdown.startswith("# Data validation FAILED")
    assert "**FAIL**" in markdown.splitlines()[6]
    assert "np." not in markdown
