"""What a feature's missing values mean for the model: imputed, kept with a missing indicator, or dropped.

Real tables have mostly-empty columns (a pool's quality, an alley's surface): refusing them would refuse the
first model, keeping them as they are would hide that "missing" is information. Validation decides, per
feature and from two limits, and the report says what it decided; the profile carries it to training
(`components/common/features.py`), and so to the signature and the served contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from components.common.profile import CATEGORICAL, ReferenceProfile
from components.validate.report import Report
from components.validate.thresholds import Thresholds, limit


@dataclass(frozen=True)
class Columns:
    """What validation decided per feature: the high-cardinality ones, those with an indicator, those dropped."""

    high_cardinality: set[str] = field(default_factory=set)
    indicated: set[str] = field(default_factory=set)
    # Dropped features (not model inputs) and their missing shares.
    dropped: dict[str, float] = field(default_factory=dict)


def decide_missing(name: str, kind: str, missing: float, limits: Thresholds, report: Report, columns: Columns) -> None:
    """Decide and report what a feature's missing values mean: imputed, kept with an indicator, or dropped.

    A mostly-empty column is not refused: above `max_missing_share` it is dropped (so it is no request field
    either), above `indicator_missing_share` a numeric one is kept with a missing indicator, since that a value
    is missing can say as much as the value (a pool area, a basement). A categorical column's missing values
    are already a category of their own. A change against the champion's decisions fails in `reference.py`.
    """
    shown_share = f"{missing:.1%} missing"
    if missing > limits.max_missing_share:
        columns.dropped[name] = missing
        detail = (
            f"{shown_share}, above {limit('max_missing_share', f'{limits.max_missing_share:.1%}')}: "
            "dropped, not a model input (nor a request field)"
        )
    elif missing > limits.indicator_missing_share and kind != CATEGORICAL:
        columns.indicated.add(name)
        detail = (
            f"{shown_share}, above {limit('indicator_missing_share', f'{limits.indicator_missing_share:.1%}')}: "
            "kept with a missing indicator beside the imputed median (linear, MLP; XGBoost splits on missing itself)"
        )
    else:
        handling = "its own category" if kind == CATEGORICAL else "imputed with the training median (XGBoost: natively)"
        detail = f"{shown_share}: kept; a missing value is {handling}"
    report.add(name, "missing_values", True, detail)


def with_decisions(profile: ReferenceProfile, columns: Columns) -> ReferenceProfile:
    """Return the profile with the missing-value decisions: indicators marked, dropped columns recorded."""
    features = {
        name: replace(stats, missing_indicator=name in columns.indicated) for name, stats in profile.features.items()
    }
    return replace(profile, features=features, dropped=dict(columns.dropped))
