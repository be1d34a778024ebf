import numpy as np
import pandas as pd
import pytest

from components.common.profile import build_profile
from components.ingest.core import load_source
from components.validate.core import Thresholds, validate


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return load_source("sklearn:breast_cancer")


def failed(report) -> set[tuple[str, str]]:
    return {(check.column, check.rule) for check in report.failures}


def test_clean_data_passes_with_and_without_reference(frame):
    assert validate(frame, "target", None).passed
    assert validate(frame, "target", build_profile(frame, "target")).passed


def test_unknown_target_column(frame):
    report = validate(frame, "label", None)
    assert failed(report) == {("label", "target_present")}
    assert "mean_radius" in report.failures[0].detail


def test_non_numeric_garbage_names_column_and_values(frame):
    bad = frame.astype({"mean_area": object})
    bad.loc[:4, "mean_area"] = "n/a"
    report = validate(bad, "target", None)
    assert failed(report) == {("mean_area", "numeric")}
    assert "'n/a'" in report.failures[0].detail


def test_all_nan_column(frame):
    bad = frame.assign(mean_area=np.nan)
    assert ("mean_area", "not_all_missing") in failed(validate(bad, "target", None))


def test_too_many_missing_values(frame):
    bad = frame.copy()
    bad.loc[: len(bad) // 5, "mean_area"] = np.nan
    assert ("mean_area", "max_missing_share") in failed(validate(bad, "target", None))


def test_infinite_values(frame):
    bad = frame.copy()
    bad.loc[0, "mean_area"] = np.inf
    assert ("mean_area", "finite") in failed(validate(bad, "target", None))


def test_single_class(frame):
    assert ("target", "min_classes") in failed(validate(frame.assign(target=1), "target", None))


def test_starved_class(frame):
    bad = pd.concat([frame[frame.target == 1], frame[frame.target == 0].head(5)])
    assert ("target", "min_class_share") in failed(validate(bad, "target", None, Thresholds(min_class_share=0.05)))


def test_drift_and_range_against_reference(frame):
    shifted = frame.assign(mean_radius=frame.mean_radius * 3)
    report = validate(shifted, "target", build_profile(frame, "target"))
    assert failed(report) == {("mean_radius", "within_reference_range"), ("mean_radius", "drift_psi")}


def test_schema_mismatch_against_reference(frame):
    report = validate(frame.drop(columns=["mean_area"]), "target", build_profile(frame, "target"))
    assert ("(dataset)", "schema_matches_reference") in failed(report)
    assert "mean_area" in report.failures[0].detail


def test_report_lists_failures_first(frame):
    markdown = validate(frame.assign(target=1), "target", None).to_markdown()
    assert markdown.startswith("# Data validation FAILED")
    first_row = markdown.splitlines()[6]
    assert "**FAIL**" in first_row
    assert "min_classes" in first_row
