"""Validate: decide the task, judge the data per task and per column kind, compare with the champion.

Every rule yields a `Check` naming the column and the rule, so a failed run ends with a report a person can
act on instead of a stack trace from deep inside training. The task (binary, multiclass, regression) is
decided here, once, from the target (or the `task` parameter) and travels on in the profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.common.profile import (
    CATEGORICAL,
    ReferenceProfile,
    build_profile,
    category_counts,
    column_kind,
)
from components.common.task import AUTO, Task, TaskError, infer_task
from components.validate.missing import Columns, decide_missing, with_decisions
from components.validate.reference import check_against_reference
from components.validate.report import TABLE_SCOPE, Report, shown
from components.validate.thresholds import Thresholds, limit

# An undeclared text column is a broken numeric column when at least this share of its values are numbers.
NUMERIC_LIKE_SHARE = 0.9
# How the candidates take a categorical feature (`components/common/features.py`), as the report says it.
FEW_CATEGORIES = "one-hot columns (linear, MLP), native categories (XGBoost, HistGradientBoosting)"
HIGH_CARDINALITY = "target encoding (linear, MLP, HistGradientBoosting), native categories (XGBoost)"


def check_table(frame: pd.DataFrame, target: str, limits: Thresholds, report: Report) -> bool:
    """Check the table as a whole; return False when column checks cannot proceed."""
    report.add(
        TABLE_SCOPE,
        "min_rows",
        len(frame) >= limits.min_rows,
        f"{len(frame)} rows, {limit('min_rows', str(limits.min_rows))}",
    )
    present = target in frame.columns
    columns = ", ".join(map(str, frame.columns[:12]))
    return report.add(target, "target_present", present, "found" if present else f"not a column; columns: {columns}")


def decide_task(frame: pd.DataFrame, target: str, override: str, report: Report) -> Task | None:
    """Decide the task from the target (or the override); a target that cannot say fails with how to choose."""
    try:
        task = infer_task(frame[target], override)
    except TaskError as error:
        report.add(target, "task", False, str(error))
        return None
    report.add(
        target, "task", True, f"{task.describe()} ({'decided from the target' if override == AUTO else 'given'})"
    )
    return task


def feature_kinds(frame: pd.DataFrame, target: str, categorical: Sequence[str]) -> dict[str, str]:
    """Return each feature's kind: declared categorical columns, else what `column_kind` reads."""
    return {str(name): column_kind(frame[name], name in categorical) for name in frame.columns if name != target}


def check_numeric_like(series: pd.Series, report: Report) -> bool:
    """Fail a text column that is mostly numbers: it is a numeric column with broken values.

    Parses each distinct value once (a million rows of a 90-value column are 90 parses, not a million).
    """
    counts = series.value_counts(dropna=True, sort=False)
    parsed = pd.to_numeric(pd.Series(counts.index, dtype=object), errors="coerce").to_numpy(dtype=float)
    numbers = ~np.isnan(parsed)
    present = int(counts.sum())
    broken = int(counts.to_numpy()[~numbers].sum())
    share = (present - broken) / present if present else 0.0
    if NUMERIC_LIKE_SHARE <= share < 1.0:
        bad = counts.index[~numbers]
        detail = (
            f"{broken} of {present} values are not numbers (e.g. {shown(bad)}) in an otherwise "
            "numeric column; fix them, or declare the column categorical"
        )
        return report.add(str(series.name), "numeric", False, detail)
    return True


def check_features(
    frame: pd.DataFrame, kinds: dict[str, str], categorical: Sequence[str], limits: Thresholds, report: Report
) -> Columns:
    """Check every feature: present at all, finite numbers; decide what its missing values mean.

    Categorical features with more than `limits.max_categories` distinct values are not refused (a zip code
    or a merchant id is a real feature) but marked high-cardinality, and the report says how the candidates
    encode them instead of one column per category.
    """
    columns = Columns()
    for name, kind in kinds.items():
        series = frame[name]
        missing = float(series.isna().mean())
        if missing == 1.0:
            report.add(name, "not_all_missing", False, "every value is missing")
            continue
        if kind == CATEGORICAL:
            if name not in categorical and not check_numeric_like(series, report):
                continue
            counts = category_counts(series)
            levels = counts.index[:3]
            if len(counts) > limits.max_categories:
                columns.high_cardinality.add(name)
                handling = f"above max_categories {limits.max_categories}, so high-cardinality: {HIGH_CARDINALITY}"
            else:
                handling = f"at most max_categories {limits.max_categories}: {FEW_CATEGORIES}"
            detail = f"categorical, {len(counts)} distinct values, e.g. {shown(levels)}; {handling}"
            report.add(name, "categories", True, detail)
        else:
            infinite = int(np.isinf(series.to_numpy(dtype=float)).sum())
            report.add(name, "finite", infinite == 0, f"numeric ({series.dtype}); {infinite} infinite values")
        decide_missing(name, kind, missing, limits, report, columns)
    return columns


def check_target(frame: pd.DataFrame, target: str, task: Task, limits: Thresholds, report: Report) -> None:
    """Check the target for the task: no gaps; classes with enough rows, or finite varying values."""
    labels = frame[target]
    report.add(target, "target_not_missing", labels.notna().all(), f"{int(labels.isna().sum())} missing labels")
    present = labels.dropna()
    if task.is_classification:
        counts = present.value_counts()
        fewest, rarest = int(counts.min()), counts.idxmin()
        report.add(
            target,
            "min_class_rows",
            fewest >= limits.min_class_rows,
            f"smallest class '{rarest}' has {fewest} rows, " + limit("min_class_rows", str(limits.min_class_rows)),
        )
        if limits.min_class_share > 0:  # opt-in
            smallest = fewest / max(len(present), 1)
            report.add(
                target,
                "min_class_share",
                smallest >= limits.min_class_share,
                f"smallest class '{rarest}' is {smallest:.1%}, "
                + limit("min_class_share", f"{limits.min_class_share:.1%}"),
            )
        return
    values = present.to_numpy(dtype=float)
    report.add(target, "finite", bool(np.isfinite(values).all()), f"{int((~np.isfinite(values)).sum())} infinite")
    spread = float(np.std(values[np.isfinite(values)])) if np.isfinite(values).any() else 0.0
    report.add(target, "not_constant", spread > 0, f"standard deviation {spread:.4g}")


@dataclass(frozen=True)
class Validation:
    """What validation concluded: the report, and the task and profile when the data passed."""

    report: Report
    task: Task | None
    profile: ReferenceProfile | None


def validate(
    frame: pd.DataFrame,
    target: str,
    reference: ReferenceProfile | None,
    limits: Thresholds | None = None,
    task: str = AUTO,
    categorical: Sequence[str] = (),
) -> Validation:
    """Run every rule that applies and return the outcome (never raises on bad data)."""
    limits = limits or Thresholds()
    report = Report()
    if not check_table(frame, target, limits, report):
        return Validation(report, None, None)
    unknown = sorted(set(categorical) - set(frame.columns))
    if unknown:
        report.add(TABLE_SCOPE, "categorical_columns", False, f"declared categorical but not columns: {unknown}")
    kinds = feature_kinds(frame, target, categorical)
    columns = check_features(frame, kinds, categorical, limits, report)
    kept = {name: kind for name, kind in kinds.items() if name not in columns.dropped}
    decided = decide_task(frame, target, task, report)
    if decided is None:
        return Validation(report, None, None)
    check_target(frame, target, decided, limits, report)
    if reference is not None:
        check_against_reference(frame, decided, kept, columns.dropped, reference, limits, report)
    if not report.passed:
        return Validation(report, decided, None)
    table = frame.drop(columns=list(columns.dropped))
    profile = build_profile(table, target, decided, kept, high_cardinality=columns.high_cardinality)
    return Validation(report, decided, with_decisions(profile, columns))


def champion_profile(tracking_uri: str, model_name: str) -> tuple[ReferenceProfile | None, str | None]:
    """Return the champion's reference profile and version, or (None, None) before the first champion."""
    from mlflow.models import get_model_info

    from components.common import tracking
    from components.common.modeling import profile_from_metadata

    client = tracking.connect(tracking_uri)
    version = tracking.champion_version(client, model_name)
    if version is None:
        return None, None
    uri = f"models:/{model_name}/{version}"  # resolved against the registry `connect` made the default
    try:
        return profile_from_metadata(get_model_info(uri).metadata, f"{model_name} v{version}"), version
    except ValueError:  # a champion registered by someone else: fixed rules only
        return None, version


# Trigger kinds that retrain because the data moved: the champion's distribution is no longer the yardstick.
DRIFT_TRIGGERS = ("input_drift", "new_data")


def expects_drift(trigger: str) -> bool:
    """Return whether the run's trigger (the pipeline's `trigger` JSON, "" for none) is a drift or new data."""
    import json

    if not trigger:
        return False
    try:
        kind = json.loads(trigger).get("kind")
    except (ValueError, AttributeError):
        return False
    return kind in DRIFT_TRIGGERS


class DataValidationError(ValueError):
    """The data broke at least one rule; the message is the report's summary."""


def run(
    dataset_path: str,
    target: str,
    tracking_uri: str,
    model_name: str,
    run_id: str,
    limits: Thresholds,
    report_path: str,
    profile_path: str,
    task: str = AUTO,
    categorical: Sequence[str] = (),
) -> Task:
    """Step entry: validate, write and log the report, write the profile; raise when a check fails."""
    import json

    from components.common import tracking
    from components.common.task import TAG_TASK

    frame = pd.read_parquet(dataset_path)
    reference, version = champion_profile(tracking_uri, model_name)
    basis = f"champion v{version}'s reference profile" if reference else "fixed rules only (no champion profile)"
    expected = " (drift expected: distribution checks reported, not failed)" if limits.expect_drift else ""
    print(f"validate: checking {len(frame)} rows against {basis}{expected}")
    outcome = validate(frame, target, reference, limits, task, categorical)
    markdown = outcome.report.to_markdown()
    with open(report_path, "w", encoding="utf-8") as handle:
        handle.write(markdown)
    client = tracking.connect(tracking_uri)
    client.log_text(run_id, markdown, "validation/report.md")
    client.log_metric(run_id, "validation_failures", len(outcome.report.failures))
    print(outcome.report.summary())
    if outcome.profile is None:
        tracking.mark_failed(client, run_id, "validate", outcome.report.summary())
        raise DataValidationError(outcome.report.summary())
    client.set_tag(run_id, TAG_TASK, outcome.profile.task.kind)
    print(f"validate: task {outcome.profile.task.describe()}")
    with open(profile_path, "w", encoding="utf-8") as handle:
        json.dump(outcome.profile.to_dict(), handle)
    return outcome.profile.task
