"""Rows for synthetic rollout traffic that fit the served model, whatever dataset it was trained on.

`make rollout` (`--traffic N`) must send requests the stable model accepts and scores like real traffic.
In order of preference:

1. `--traffic-source` (a CSV/Parquet path, `sklearn:<name>`, `synthetic:churn`): real rows, the target
   column (`--traffic-target`) and anything the model does not take dropped;
2. the data the stable version was trained on, where its training run recorded it (plinth's pipeline and
   drills record `source` and `target` params): real rows again;
3. the stable version's reference profile (plinth's models): each feature drawn on its own, numbers
   inside a quantile bin picked by its share, categories by frequency, missing values by their share.
   The marginals are the training data's, so input drift reads as healthy, but the correlations between
   features are lost: off those correlations a sound model is unsure, and a garbage one is much harder to
   tell from it (measured on breast cancer: Jensen-Shannon 0.05 instead of 0.8 for a shuffled-label model);
4. the stable version's input example and signature (any MLflow model): the same sampling, profiled from
   the example's few rows.

Each value is typed as the signature says (JSON integers for `long`, strings for `string`…), because the
service validates strictly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from components.common.profile import FeatureProfile, column_kind, profile_feature
from serving.rollout.edges.inspect_model import InputColumn, ModelFacts

LOG = logging.getLogger("plinth.rollout")
DEFAULT_ROWS = 600
INTEGER_TYPES = frozenset({"long", "integer"})
FLOAT_TYPES = frozenset({"double", "float"})
Row = dict[str, Any]


class TrafficError(ValueError):
    """No rows can be made for the model; the message says what to pass instead."""


def json_value(value: Any) -> Any:
    """Return a cell as a JSON value: numpy scalars as Python ones, missing values as null."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return json_value(value.item())
    return value


def typed(value: Any, kind: str | None) -> Any:
    """Return `value` as the signature type `kind` wants it (unchanged for unknown types, null stays null)."""
    value = json_value(value)
    if value is None or kind is None:
        return value
    if kind in INTEGER_TYPES:
        return round(float(value))
    if kind in FLOAT_TYPES:
        return float(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind == "string":
        return str(value)
    return value


def records(frame: pd.DataFrame, inputs: Sequence[InputColumn] = ()) -> list[Row]:
    """Return a frame's rows as /predict instances, typed and restricted to `inputs` when given."""
    kinds = {column.name: column.kind for column in inputs}
    if kinds:
        frame = frame[[name for name in kinds if name in frame.columns]]
    return [
        {str(name): typed(value, kinds.get(str(name))) for name, value in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def feature_sampler(stats: FeatureProfile, rng: np.random.Generator, optional: bool) -> Callable[[], Any]:
    """Return a function drawing one value of a profiled feature (missing only where the model allows it)."""
    missing = stats.missing_share if optional else 0.0
    if stats.is_numeric:
        lows = [stats.minimum, *stats.bin_edges]
        highs = [*stats.bin_edges, stats.maximum]

        def number() -> Any:
            if rng.random() < missing:
                return None
            index = rng.choice(len(stats.bin_shares), p=normalised(stats.bin_shares))
            low, high = sorted((lows[index], highs[index]))
            return float(rng.uniform(low, high))

        return number
    shares = normalised(stats.bin_shares[: len(stats.categories)])

    def category() -> Any:
        if rng.random() < missing:
            return None
        return stats.categories[rng.choice(len(stats.categories), p=shares)]

    return category


def normalised(shares: Sequence[float]) -> np.ndarray:
    """Return non-negative shares scaled to sum to 1 (uniform when they sum to 0)."""
    array = np.clip(np.asarray(shares, dtype=float), 0.0, None)
    return array / array.sum() if array.sum() > 0 else np.full(len(array), 1.0 / len(array))


def sampled_rows(
    features: dict[str, FeatureProfile], inputs: Sequence[InputColumn], count: int, seed: int
) -> list[Row]:
    """Draw `count` rows, each feature on its own, typed as the signature says."""
    rng = np.random.default_rng(seed)
    columns = inputs or [InputColumn(name, "", stats.missing_share == 0) for name, stats in features.items()]
    samplers = {column.name: feature_sampler(features[column.name], rng, not column.required) for column in columns}
    kinds = {column.name: column.kind or None for column in columns}
    return [{name: typed(draw(), kinds[name]) for name, draw in samplers.items()} for _ in range(count)]


def example_profiles(example: pd.DataFrame) -> dict[str, FeatureProfile]:
    """Profile each column of an input example (a few rows) the way training profiles a dataset."""
    return {str(name): profile_feature(example[name], column_kind(example[name])) for name in example.columns}


def source_rows(stable: ModelFacts, source: str, target: str | None) -> list[Row]:
    """Return the rows of a dataset as instances of the stable model (target and extra columns dropped).

    Raises:
        TrafficError: the dataset lacks a column the model requires.
    """
    from components.ingest.core import load_source

    frame = load_source(source)
    frame = frame.drop(columns=[target]) if target and target in frame.columns else frame
    lacking = [column.name for column in stable.inputs if column.required and column.name not in frame.columns]
    if lacking:
        raise TrafficError(f"{source} lacks input columns of {stable.name} v{stable.version}: {', '.join(lacking[:5])}")
    return records(frame, stable.inputs)


def traffic_rows(
    stable: ModelFacts, source: str | None = None, target: str | None = None, count: int = DEFAULT_ROWS, seed: int = 0
) -> tuple[list[Row], str]:
    """Return rows that fit the stable model and a few words on where they came from.

    Raises:
        TrafficError: the given source lacks a column the model needs, or nothing fits: no source given or
            recorded, no reference profile and no input example.
    """
    if source:
        return source_rows(stable, source, target), f"rows of {source}"
    if stable.training_data is not None:
        trained_on, column = stable.training_data
        try:
            rows = source_rows(stable, trained_on, column)
            return rows, f"rows of {trained_on}, the data v{stable.version} was trained on"
        except (TrafficError, OSError, ValueError) as error:
            LOG.warning(
                "cannot read %s, the training data of v%s (%s): drawing rows instead", trained_on, stable.version, error
            )
    if stable.profile is not None:
        rows = sampled_rows(stable.profile.features, stable.inputs, count, seed)
        return rows, f"rows drawn from v{stable.version}'s reference profile"
    if stable.example is not None and not stable.example.empty and stable.inputs:
        try:
            features = example_profiles(stable.example)
        except ValueError as error:
            raise TrafficError(f"cannot draw rows from v{stable.version}'s input example ({error})") from error
        missing = [column.name for column in stable.inputs if column.name not in features]
        if not missing:
            rows = sampled_rows(features, stable.inputs, count, seed)
            return rows, f"rows drawn from v{stable.version}'s input example ({len(stable.example)} rows)"
    raise TrafficError(
        f"{stable.name} v{stable.version} has no reference profile and no input example that covers its "
        "signature: pass --traffic-source <csv|sklearn:name|synthetic:churn> (and --traffic-target <column>)"
    )
