"""What a metrics source reports for one analysis interval, per track, and the contract sources meet.

Every number may be NaN: a source never invents a value it could not read, and the analysis treats NaN as
"no data", which never passes a check. Predictions are reported as every distribution the service
exports, whatever its task: predicted-class counts and per-class probability histograms (classifiers),
the predicted-value histogram (regressors). The analysis compares whatever both tracks report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from serving.rollout.core.histogram import bucket_total
from serving.rollout.core.paired import PairCounts

NAN = math.nan
STABLE = "stable"
CANARY = "canary"
PREDICT_ENDPOINT = "/predict"
# `plinth_model_info{drift}`: whether the service scores input drift (off: the model has no reference profile).
DRIFT_ON, DRIFT_OFF = "on", "off"

# The model service's prediction metrics (sample names as exposed, counters with their `_total`).
CLASS_COUNTER = "plinth_predicted_class_total"
PROBABILITY_BUCKET = "plinth_prediction_probability_bucket"
VALUE_BUCKET = "plinth_prediction_value_bucket"
# Summed probability of each answered label (classifiers with probabilities): CBPE's expected correct answers.
CONFIDENCE_COUNTER = "plinth_answered_confidence_total"
# Ground truth joined to logged predictions (Summaries labelled by the logged prediction's `model_version`):
# a classifier's labelled rows and how many were right, a regressor's labelled rows and their absolute errors.
LIVE_CORRECT_COUNT = "plinth_live_correct_count"
LIVE_CORRECT_SUM = "plinth_live_correct_sum"
LIVE_ERROR_COUNT = "plinth_live_absolute_error_count"
LIVE_ERROR_SUM = "plinth_live_absolute_error_sum"
# The squared errors' sum: the variance the MAE comparison needs (`mae.py`).
LIVE_SQUARED_SUM = "plinth_live_squared_error_sum"
LIVE_SAMPLES = (LIVE_CORRECT_COUNT, LIVE_CORRECT_SUM, LIVE_ERROR_COUNT, LIVE_ERROR_SUM, LIVE_SQUARED_SUM)

Buckets = dict[float, float]


def add_counts(total: dict, counts: dict) -> None:
    """Add `counts` into `total` key by key (NaN counts are skipped)."""
    for key, count in counts.items():
        if not math.isnan(count):
            total[key] = total.get(key, 0.0) + count


def bounds_out(buckets: Buckets) -> dict[str, float]:
    """Return a histogram with its bounds as strings (JSON object keys)."""
    return {repr(bound): count for bound, count in buckets.items()}


def bounds_in(buckets: Mapping[str, Any]) -> Buckets:
    """Return a histogram written by `bounds_out`."""
    return {float(bound): float(count) for bound, count in buckets.items()}


@dataclass
class Predictions:
    """What a track answered: counts per predicted class and cumulative histograms (le -> count)."""

    # Predicted class -> instances (classifiers: `plinth_predicted_class_total`).
    classes: dict[str, float] = field(default_factory=dict)
    # Class -> histogram of that class's predicted probability (`plinth_prediction_probability_bucket`).
    # A binary service observes only its positive class; a service from before the `class` label, "".
    probabilities: dict[str, Buckets] = field(default_factory=dict)
    # Histogram of predicted values (regressors: `plinth_prediction_value_bucket`), bounds per model.
    values: Buckets = field(default_factory=dict)
    # Sum of the answered labels' probabilities (`plinth_answered_confidence_total`); NaN: not exported.
    confidence: float = NAN

    @property
    def total(self) -> float:
        """Return how many predictions of any kind these counts hold (0 when none).

        Every distribution counts each prediction once (a multiclass service observes every class's
        probability once per instance), so the largest one is the count, whichever the service exports.
        """
        sizes = [sum(self.classes.values()), bucket_total(self.values)]
        sizes += [bucket_total(buckets) for buckets in self.probabilities.values()]
        return max(sizes)

    def to_record(self) -> dict[str, Any]:
        """Return the counts as JSON-safe data (bucket bounds as strings: `inf` included)."""
        return {
            "classes": dict(self.classes),
            "probabilities": {name: bounds_out(buckets) for name, buckets in self.probabilities.items()},
            "values": bounds_out(self.values),
            "confidence": None if math.isnan(self.confidence) else self.confidence,
        }

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Predictions:
        """Read counts written by `to_record`."""
        return cls(
            classes={str(name): float(count) for name, count in data.get("classes", {}).items()},
            probabilities={name: bounds_in(buckets) for name, buckets in data.get("probabilities", {}).items()},
            values=bounds_in(data.get("values", {})),
            confidence=NAN if data.get("confidence") is None else float(data["confidence"]),
        )

    def add(self, other: Predictions) -> None:
        """Fold another interval's counts in."""
        add_counts(self.classes, other.classes)
        for name, buckets in other.probabilities.items():
            add_counts(self.probabilities.setdefault(name, {}), buckets)
        add_counts(self.values, other.values)
        self.confidence = add_known(self.confidence, other.confidence)


def predictions_of(samples: Iterable[tuple[str, Mapping[str, str], float]]) -> Predictions:
    """Return the prediction counts in (sample name, labels, value) triples; other samples and NaN are ignored.

    Both metrics sources end here: PromQL results and a parsed /metrics page differ only in how they
    carry the same series. Samples with the same class and bound are summed (several processes).
    """
    found = Predictions()
    for name, labels, value in samples:
        if name == CLASS_COUNTER:
            add_counts(found.classes, {labels.get("class", ""): value})
        elif name == PROBABILITY_BUCKET:
            add_counts(found.probabilities.setdefault(labels.get("class", ""), {}), {float(labels["le"]): value})
        elif name == VALUE_BUCKET:
            add_counts(found.values, {float(labels["le"]): value})
        elif name == CONFIDENCE_COUNTER:
            found.confidence = add_known(found.confidence, value)
    return found


def add_known(total: float, value: float) -> float:
    """Return `total + value` where NaN means "never reported": NaN + x is x, x + NaN is x."""
    if math.isnan(value):
        return total
    return value if math.isnan(total) else total + value


@dataclass
class LiveQuality:
    """Ground truth for one model version: labelled rows, how many were right, the sum of absolute errors.

    NaN is "no such series": a version without labels yet, or feedback off (the Summaries export nothing
    until their first label). A classifier reports `correct`, a regressor `absolute_error`.
    """

    labelled: float = NAN
    correct: float = NAN
    absolute_error: float = NAN
    squared_error: float = NAN

    @property
    def accuracy(self) -> float:
        """Return the share of labelled classification rows that were right, NaN without any."""
        return self.correct / self.labelled if self.labelled > 0 and not math.isnan(self.correct) else NAN

    @property
    def mae(self) -> float:
        """Return the mean absolute error of labelled regression rows, NaN without any."""
        labelled, error = self.labelled, self.absolute_error
        return error / labelled if labelled > 0 and not math.isnan(error) else NAN

    def add(self, other: LiveQuality) -> None:
        """Fold another interval's increases in (labels arrive sparse and late: summed over the rollout)."""
        self.labelled = add_known(self.labelled, other.labelled)
        self.correct = add_known(self.correct, other.correct)
        self.absolute_error = add_known(self.absolute_error, other.absolute_error)
        self.squared_error = add_known(self.squared_error, other.squared_error)

    def to_record(self) -> dict[str, float | None]:
        """Return the sums as JSON-safe data (None for NaN)."""
        return {name: None if math.isnan(value) else value for name, value in vars(self).items()}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> LiveQuality:
        """Read sums written by `to_record`."""
        return cls(**{name: NAN if data.get(name) is None else float(data[name]) for name in vars(cls())})


def live_quality_of(samples: Iterable[tuple[str, Mapping[str, str], float]], version: str | None) -> LiveQuality:
    """Return the live-quality increases of one model version in (sample name, labels, value) triples.

    Selected by the `model_version` label, summed over every process and track that exports it: feedback for
    the stable's answer may reach the canary's process, which exports it under the stable's version. An
    unknown or ambiguous version (several processes disagreeing, comma-joined) selects nothing.
    """
    found = LiveQuality()
    if not version or "," in version:
        return found
    sums = {name: NAN for name in LIVE_SAMPLES}
    for name, labels, value in samples:
        if name in sums and labels.get("model_version") == version:
            sums[name] = add_known(sums[name], value)
    found.labelled = add_known(sums[LIVE_CORRECT_COUNT], sums[LIVE_ERROR_COUNT])
    found.correct = sums[LIVE_CORRECT_SUM]
    found.absolute_error = sums[LIVE_ERROR_SUM]
    found.squared_error = sums[LIVE_SQUARED_SUM]
    return found


@dataclass(frozen=True)
class TrackSample:
    """One track's signals over the interval."""

    requests: float = NAN
    errors: float = NAN
    p99_seconds: float = NAN
    # Cumulative histogram (le -> requests) of the `/predict` durations over the interval: the sequential
    # latency check counts requests slower than the stable's p99 from it.
    latency: Buckets = field(default_factory=dict)
    predictions: Predictions = field(default_factory=Predictions)
    input_drift: float = NAN
    # Increases of the track's model version's live-quality Summaries, whichever process exported them.
    live: LiveQuality = field(default_factory=LiveQuality)
    model_version: str | None = None
    # From `plinth_model_info` labels, None when the service does not say (comma-joined if several).
    task: str | None = None
    drift: str | None = None
    # Why the source has nothing for this track (target down, service not answering), None when it read it.
    missing: str | None = None

    @property
    def success_rate(self) -> float:
        """Return the non-5xx share of requests, NaN without requests."""
        if not self.requests > 0 or math.isnan(self.errors):
            return NAN
        return 1.0 - self.errors / self.requests


@dataclass(frozen=True)
class Observation:
    """Both tracks over one interval, and why the source could not read them if it could not."""

    stable: TrackSample
    canary: TrackSample
    error: str | None = None
    # The shadow phase's paired answers since the rollout began (`core/paired.py`); None: this edge pairs none.
    pairs: PairCounts | None = None


class MetricsSource(Protocol):
    """Reads the signals of both tracks over the last `window_seconds`."""

    def start(self) -> None:
        """Mark the start of a rollout (a source that computes deltas takes its baseline here)."""

    def observe(self, window_seconds: float) -> Observation:
        """Return both tracks' signals over the window ending now; never raise for missing data."""


def empty_observation(error: str) -> Observation:
    """Return an observation with no data on either track."""
    return Observation(stable=TrackSample(), canary=TrackSample(), error=error)


def joined(values: list[str]) -> str | None:
    """Return distinct label values sorted and comma-joined, None when there are none."""
    return ",".join(sorted(set(values))) or None


def info_labels(series: list[dict[str, str]]) -> dict[str, str | None]:
    """Return model version, task and drift from the label sets of `plinth_model_info` series."""
    return {
        name: joined([labels[name] for labels in series if labels.get(name)])
        for name in ("model_version", "task", "drift")
    }
