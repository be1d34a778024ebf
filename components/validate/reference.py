"""Compare a dataset with the champion's reference profile: task, schema, kinds, ranges, categories, drift."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.common.profile import FeatureProfile, ReferenceProfile, category_counts, feature_psi, psi
from components.common.task import Task
from components.validate.report import TABLE_SCOPE, Report, shown
from components.validate.thresholds import Thresholds, flag, limit


def check_against_reference(
    frame: pd.DataFrame,
    task: Task,
    kinds: dict[str, str],
    dropped: dict[str, float],
    reference: ReferenceProfile,
    limits: Thresholds,
    report: Report,
) -> None:
    """Compare task, schema, kinds, ranges, categories, missing values and distributions with the champion's.

    `kinds` are the features this run keeps, `dropped` the mostly-empty ones it drops (`missing.py`): a column
    whose missing share crossed a line the champion's did not is a schema change, named as such. With
    `limits.expect_drift`, the distribution checks (ranges, unseen categories, missing values, PSI) are
    recorded with their values and marked expected instead of failing.
    """

    def distribution(column: str, rule: str, passed: bool, detail: str) -> None:
        if limits.expect_drift and not passed:
            report.add(column, rule, True, f"{detail} (expected: this run retrains on drifted data)")
        else:
            report.add(column, rule, passed, detail)

    same_task = task == reference.task
    report.add(
        reference.target,
        "task_matches_reference",
        same_task,
        f"this data: {task.describe()}; champion: {reference.task.describe()}"
        + ("" if same_task else "; train it under another model_name"),
    )
    missing = sorted(set(reference.feature_names) - set(kinds))
    extra = sorted(set(kinds) - set(reference.feature_names))
    why = [f"{name}: {dropped[name]:.1%} missing here, dropped" for name in missing if name in dropped]
    why += [
        f"{name}: the champion dropped it ({reference.dropped[name]:.1%} missing)"
        for name in extra
        if name in reference.dropped
    ]
    report.add(
        TABLE_SCOPE,
        "schema_matches_reference",
        not missing and not extra,
        f"missing {missing}, extra {extra}" + (f" ({'; '.join(why)}; {flag('max_missing_share')})" if why else ""),
    )
    for name in (f for f in reference.feature_names if f in kinds):
        expected = reference.features[name]
        if not report.add(
            name, "kind_matches_reference", kinds[name] == expected.kind, f"{kinds[name]}, champion: {expected.kind}"
        ):
            continue
        series = frame[name]
        share = float(series.isna().mean())
        indicated = expected.is_numeric and share > limits.indicator_missing_share
        distribution(
            name,
            "missing_values_match_reference",
            indicated == expected.missing_indicator,
            f"{share:.1%} missing{', a missing indicator' if indicated else ''}; champion: "
            f"{expected.missing_share:.1%}{', a missing indicator' if expected.missing_indicator else ''} "
            f"({flag('indicator_missing_share')})",
        )
        if expected.is_numeric:
            values = series.to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            slack = limits.range_tolerance * (expected.maximum - expected.minimum)
            beyond = (values < expected.minimum - slack) | (values > expected.maximum + slack)
            outside = float(np.mean(beyond)) if values.size else 0.0
            span = f"[{expected.minimum:.4g}, {expected.maximum:.4g}] ± {limits.range_tolerance:.0%}"
            distribution(
                name,
                "within_reference_range",
                outside <= limits.max_out_of_range_share,
                f"{outside:.1%} outside {span} ({flag('range_tolerance')}), "
                + limit("max_out_of_range_share", f"{limits.max_out_of_range_share:.1%}"),
            )
        else:
            counts = category_counts(series)
            unseen = counts[~counts.index.isin(expected.categories)]
            present = int(counts.sum())
            unseen_share = int(unseen.sum()) / present if present else 0.0
            allowed = expected.bin_shares[-1] + limits.max_unseen_share
            distribution(
                name,
                "unseen_categories",
                unseen_share <= allowed,
                f"{unseen_share:.1%} of values in categories the champion never saw "
                + limit("max_unseen_share", f"{allowed:.1%}: its own other share + {limits.max_unseen_share:.1%}")
                + (f", e.g. {shown(unseen.index)}" if len(unseen) else ""),
            )
            drift = category_drift_counts(expected, counts, int(series.isna().sum()))
        score = (
            feature_psi(expected, series.to_numpy())
            if expected.is_numeric
            else float(psi(expected.expected_shares(), drift))
        )
        distribution(
            name, "drift_psi", score <= limits.max_psi, f"PSI {score:.3f}, {limit('max_psi', str(limits.max_psi))}"
        )


def category_drift_counts(expected: FeatureProfile, counts: pd.Series, missing: int) -> np.ndarray:
    """Return a categorical column's drift-bin counts from its category counts (`category_counts`).

    The same bins as `FeatureProfile.drift_counts` (the reference's categories, "other", missing), counted
    from the distinct values instead of naming every row in Python.
    """
    known = [int(counts.get(category, 0)) for category in expected.categories]
    return np.array([*known, int(counts.sum()) - sum(known), missing], dtype=np.int64)
