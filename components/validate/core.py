"""Validate: judge a dataset against fixed rules and, when one exists, the champion's reference profile.

Every rule yields a `Check` naming the column and the rule, so a failed run ends with a report a person can
act on instead of a stack trace from deep inside training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from components.common.profile import ReferenceProfile, bin_counts, build_profile, psi

TABLE_SCOPE = "(dataset)"


@dataclass(frozen=True)
class Thresholds:
    """Limits of the data checks; all are pipeline parameters."""

    min_rows: int = 50
    max_missing_share: float = 0.05
    min_class_share: float = 0.05
    max_psi: float = 0.25
    # Share of a feature's values allowed outside the reference [min, max] widened by `range_tolerance`.
    max_out_of_range_share: float = 0.01
    range_tolerance: float = 0.1


@dataclass(frozen=True)
class Check:
    """The outcome of one rule on one column (or on the whole table)."""

    column: str
    rule: str
    passed: bool
    detail: str


@dataclass
class Report:
    """All checks of one validation run."""

    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Return True when no check failed."""
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        """Return the failed checks."""
        return [check for check in self.checks if not check.passed]

    def add(self, column: str, rule: str, passed: bool, detail: str) -> None:
        """Record one check."""
        self.checks.append(Check(column, rule, bool(passed), detail))

    def summary(self) -> str:
        """Return one line per failure, for logs and error messages."""
        if self.passed:
            return f"validation passed: {len(self.checks)} checks"
        lines = [f"validation failed: {len(self.failures)} of {len(self.checks)} checks"]
        lines += [f"  - column {c.column!r}, rule {c.rule}: {c.detail}" for c in self.failures]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """Render the report as a Markdown table, failures first."""
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"# Data validation {verdict}",
            "",
            f"{len(self.checks)} checks, {len(self.failures)} failed.",
            "",
            "| result | column | rule | detail |",
            "|---|---|---|---|",
        ]
        for check in sorted(self.checks, key=lambda c: c.passed):
            mark = "ok" if check.passed else "**FAIL**"
            lines.append(f"| {mark} | `{check.column}` | {check.rule} | {check.detail} |")
        return "\n".join(lines) + "\n"


def check_table(frame: pd.DataFrame, target: str, limits: Thresholds, report: Report) -> bool:
    """Check the table as a whole; return False when column checks cannot proceed."""
    report.add(TABLE_SCOPE, "min_rows", len(frame) >= limits.min_rows, f"{len(frame)} rows, need {limits.min_rows}")
    present = target in frame.columns
    columns = ", ".join(map(str, frame.columns[:12]))
    report.add(target, "target_present", present, "found" if present else f"not a column; columns: {columns}")
    return present


def check_features(frame: pd.DataFrame, target: str, limits: Thresholds, report: Report) -> None:
    """Check that every feature is numeric, finite and mostly present."""
    for name in (c for c in frame.columns if c != target):
        series = frame[name]
        missing = float(series.isna().mean())
        if missing == 1.0:
            report.add(name, "not_all_missing", False, "every value is missing")
            continue
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
            sample = ", ".join(repr(v) for v in bad.head(3))
            report.add(name, "numeric", False, f"dtype {series.dtype}; non-numeric values e.g. {sample}")
            continue
        report.add(name, "numeric", True, str(series.dtype))
        infinite = int(np.isinf(series.to_numpy(dtype=float)).sum())
        report.add(name, "finite", infinite == 0, f"{infinite} infinite values")
        report.add(
            name,
            "max_missing_share",
            missing <= limits.max_missing_share,
            f"{missing:.1%} missing, limit {limits.max_missing_share:.1%}",
        )


def check_target(frame: pd.DataFrame, target: str, limits: Thresholds, report: Report) -> None:
    """Check that the target has no gaps, at least two classes, and no starved class."""
    labels = frame[target]
    report.add(target, "target_not_missing", labels.notna().all(), f"{int(labels.isna().sum())} missing labels")
    shares = labels.value_counts(normalize=True)
    report.add(target, "min_classes", len(shares) >= 2, f"{len(shares)} class(es): {sorted(map(str, shares.index))}")
    if len(shares) >= 2:
        smallest = float(shares.min())
        report.add(
            target,
            "min_class_share",
            smallest >= limits.min_class_share,
            f"smallest class {shares.idxmin()!r} is {smallest:.1%}, limit {limits.min_class_share:.1%}",
        )


def check_against_reference(
    frame: pd.DataFrame, target: str, reference: ReferenceProfile, limits: Thresholds, report: Report
) -> None:
    """Compare schema, ranges and distributions with the profile the champion was trained on."""
    features = [c for c in frame.columns if c != target]
    missing = sorted(set(reference.feature_names) - set(features))
    extra = sorted(set(features) - set(reference.feature_names))
    report.add(
        TABLE_SCOPE,
        "schema_matches_reference",
        not missing and not extra,
        f"missing {missing}, extra {extra}",
    )
    for name in (f for f in reference.feature_names if f in frame.columns):
        series = frame[name]
        if not pd.api.types.is_numeric_dtype(series):
            continue
        expected = reference.features[name]
        values = series.to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        slack = limits.range_tolerance * (expected.maximum - expected.minimum)
        outside = float(((values < expected.minimum - slack) | (values > expected.maximum + slack)).mean())
        report.add(
            name,
            "within_reference_range",
            outside <= limits.max_out_of_range_share,
            f"{outside:.1%} outside [{expected.minimum:.4g}, {expected.maximum:.4g}] ± {limits.range_tolerance:.0%}",
        )
        score = float(psi(expected.bin_shares, bin_counts(values, expected.bin_edges)))
        report.add(name, "drift_psi", score <= limits.max_psi, f"PSI {score:.3f}, limit {limits.max_psi}")


def validate(
    frame: pd.DataFrame, target: str, reference: ReferenceProfile | None, limits: Thresholds | None = None
) -> Report:
    """Run every rule that applies and return the report (never raises on bad data)."""
    limits = limits or Thresholds()
    report = Report()
    if not check_table(frame, target, limits, report):
        return report
    check_features(frame, target, limits, report)
    check_target(frame, target, limits, report)
    if reference is not None:
        check_against_reference(frame, target, reference, limits, report)
    return report


def champion_profile(tracking_uri: str, model_name: str) -> tuple[ReferenceProfile | None, str | None]:
    """Return the champion's reference profile and version, or (None, None) before the first champion."""
    from mlflow.models import get_model_info

    from components.common import tracking
    from components.common.modeling import METADATA_KEY

    client = tracking.connect(tracking_uri)
    version = tracking.champion_version(client, model_name)
    if version is None:
        return None, None
    metadata = get_model_info(f"models:/{model_name}/{version}").metadata or {}
    if METADATA_KEY not in metadata:
        return None, version
    return ReferenceProfile.from_dict(metadata[METADATA_KEY]["reference_profile"]), version


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
) -> None:
    """Step entry: validate, write and log the report, write the profile; raise when a check fails."""
    import json

    from components.common import tracking

    frame = pd.read_parquet(dataset_path)
    reference, version = champion_profile(tracking_uri, model_name)
    basis = f"champion v{version}'s reference profile" if reference else "fixed rules only (no champion yet)"
    print(f"validate: checking {len(frame)} rows against {basis}")
    report = validate(frame, target, reference, limits)
    markdown = report.to_markdown()
    with open(report_path, "w", encoding="utf-8") as handle:
        handle.write(markdown)
    client = tracking.connect(tracking_uri)
    client.log_text(run_id, markdown, "validation/report.md")
    client.log_metric(run_id, "validation_failures", len(report.failures))
    print(report.summary())
    if not report.passed:
        tracking.mark_failed(client, run_id, "validate", report.summary())
        raise DataValidationError(report.summary())
    with open(profile_path, "w", encoding="utf-8") as handle:
        json.dump(build_profile(frame, target).to_dict(), handle)
