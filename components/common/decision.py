"""How a classifier's probabilities become answers: calibration when they are off, and a binary threshold.

A fitted candidate is finalised on the validation rows, rows its fit never saw (`finalize`):

1. **Calibration.** Its top-label expected calibration error (ECE, `expected_calibration_error`) is measured.
   Above ECE_LIMIT the learner is calibrated on those rows with scikit-learn's
   `CalibratedClassifierCV(FrozenEstimator(learner))`: Platt's sigmoid below ISOTONIC_MIN_ROWS validation rows,
   isotonic regression from there on (scikit-learn's advice: isotonic overfits small sets). The calibrator
   wraps the pipeline's last step, not the whole pipeline, so serving still compiles the fitted preprocessing
   (`serving/model_service/compiled.py`). A calibrator that does not lower the ECE on those rows is not kept.
   Probabilities are answered as the (calibrated) model gives them.
2. **Threshold** (binary only). The cut of P(positive) that maximises F1 of the positive class (`f1`), or
   minimises the cost of the errors (`cost:FP,FN`: a false positive costs FP, a false negative FN), on those
   rows, from scikit-learn's `roc_curve` counts at every distinct score (`choose_threshold`). Only the label
   uses it (`task.predicted_index`): serving, the predicted-class metric, batch scoring and evaluation alike.

With `refit_full` the saved model is the same settings refitted on training + validation rows
(components/search/refit.py); it keeps the threshold and the calibrator chosen here (`carried`), and the
decision records that (`refit`, `fit_rows`).

The `Decision` rides in the MLmodel metadata (`plinth.decision`); a model without one keeps the 0.5 rule.
ece_after is measured on the rows the calibrator was fitted on (optimistic); evaluation reports the test
rows' ECE beside it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from components.common.profile import ReferenceProfile
from components.common.task import BINARY

METADATA_FIELD = "decision"
F1 = "f1"
COST_PREFIX = "cost:"
OBJECTIVE_FLAG = "--decision-objective"
NONE, SIGMOID, ISOTONIC = "none", "sigmoid", "isotonic"
CALIBRATIONS = (NONE, SIGMOID, ISOTONIC)
NUMBER_FIELDS = ("threshold", "ece_before", "ece_after")
# Top-label ECE above which a candidate is calibrated: 3 points of confidence against accuracy on average.
ECE_LIMIT = 0.03
ECE_BINS = 15
ISOTONIC_MIN_ROWS = 1000


@dataclass(frozen=True)
class Decision:
    """How a model's output becomes its answer, as chosen on validation rows."""

    threshold: float | None = None  # binary: positive from this P(positive) on; None keeps 0.5 / argmax
    objective: str = F1
    calibration: str = NONE
    ece_before: float | None = None  # validation rows, as fitted
    ece_after: float | None = None  # validation rows, after calibration (the same as before without one)
    refit: bool = False  # the saved model was refitted on training + validation rows (components/search/refit.py)
    fit_rows: int | None = None  # the rows the saved model was fitted on

    def __post_init__(self) -> None:
        """Refuse a decision that cannot be applied."""
        parse_objective(self.objective)
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got {self.calibration!r}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"a decision threshold is a probability, got {self.threshold}")

    def metadata(self) -> dict[str, Any]:
        """Return the JSON block stored as `plinth.decision` in the MLmodel metadata."""
        return asdict(self)

    @classmethod
    def from_metadata(cls, block: Mapping[str, Any]) -> Decision:
        """Rebuild a decision written by `metadata`."""
        numbers = {key: None if block.get(key) is None else float(block[key]) for key in NUMBER_FIELDS}
        rows = block.get("fit_rows")
        return cls(
            objective=str(block.get("objective", F1)),
            calibration=str(block.get("calibration", NONE)),
            refit=bool(block.get("refit", False)),
            fit_rows=None if rows is None else int(rows),
            **numbers,
        )


def parse_objective(objective: str) -> tuple[float, float] | None:
    """Return (cost of a false positive, of a false negative) for `cost:FP,FN`, None for `f1`.

    Raises:
        ValueError: any other text, naming the flag that sets it.
    """
    if objective == F1:
        return None
    if objective.startswith(COST_PREFIX):
        parts = objective[len(COST_PREFIX) :].split(",")
        try:
            costs = tuple(float(part) for part in parts)
        except ValueError:
            costs = ()
        if len(costs) == 2 and all(np.isfinite(cost) and cost >= 0 for cost in costs) and sum(costs) > 0:
            return costs[0], costs[1]
    raise ValueError(
        f"decision_objective ({OBJECTIVE_FLAG}) must be 'f1' or 'cost:FP,FN' with two costs >= 0 "
        f"(e.g. cost:1,5: a missed positive costs five false alarms), got {objective!r}"
    )


def objective_argument(text: str) -> str:
    """Return `text` when it is an objective: argparse's type for `--decision-objective` (one line when not)."""
    import argparse

    try:
        parse_objective(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text


def decision_of(metadata: Mapping[str, Any] | None) -> Decision | None:
    """Return the decision in an MLmodel metadata dict (`{"plinth": {...}}`), None for a model without one."""
    block = ((metadata or {}).get("plinth") or {}).get(METADATA_FIELD)
    return Decision.from_metadata(block) if block else None


def threshold_of(metadata: Mapping[str, Any] | None) -> float | None:
    """Return the binary threshold stored with a model, None where the 0.5 rule applies."""
    decision = decision_of(metadata)
    return decision.threshold if decision is not None else None


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Return the top-label ECE: sum over confidence bins of (rows in bin / rows) x |accuracy - confidence|.

    `probabilities` (n, classes) in the task's column order, `labels` each row's true class index. Each row's
    confidence is its largest probability and it is right when that class is its label (Guo et al. 2017);
    a binary model's confidence is therefore at least 0.5. The bins are `bins` equal widths of [0, 1], assigned
    as scikit-learn's `calibration_curve` assigns them, which gives each non-empty bin's accuracy and confidence.
    """
    from sklearn.calibration import calibration_curve

    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == np.asarray(labels)).astype(np.int64)
    if len(np.unique(correct)) < 2:  # all right or all wrong: every bin's accuracy is that one value
        return float(np.abs(correct.mean() - confidence.mean())) if correct.size else 0.0
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=bins)
    weights = counts[counts > 0] / confidence.size
    return float(np.sum(weights * np.abs(accuracy - mean_confidence)))


def _split_last(model: Any) -> tuple[Any, Any]:
    """Return (the preprocessing as one transformer or None, the learner) of a candidate."""
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline) and len(model.steps) > 1:
        return model[:-1], model.steps[-1][1]
    return None, model


def calibrated(model: Any, features: Any, labels: Any, method: str) -> Any:
    """Return `model` with its learner calibrated by `method` on these rows, its preprocessing as it was."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    head, learner = _split_last(model)
    inputs = head.transform(features) if head is not None else features
    calibrator = CalibratedClassifierCV(FrozenEstimator(learner), method=method).fit(inputs, labels)
    if head is None:
        return calibrator
    return Pipeline([*model.steps[:-1], (model.steps[-1][0], calibrator)])


def carried(decided: Any, refitted: Any) -> Any:
    """Return `refitted` with the calibrator `decided` got on the validation rows, now mapping refitted's scores.

    `decided` is `finalize`'s model (fitted on the training rows), `refitted` the same settings fitted on
    training + validation rows (components/search/refit.py), both as saved. The threshold needs nothing: it is
    a cut of the probabilities, kept in the decision. Keeping the calibrator and threshold chosen on the
    validation rows is the accepted approximation: the refitted model has seen those rows, so no unseen rows
    are left to choose them again (its in-sample scores would be over-confident, which is worse), and its
    scores differ from the first fit's only by what a quarter more rows of the same table change. Evaluation
    measures the saved model's ECE on the test rows, so a calibrator that no longer fits shows there.
    """
    from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    _, calibrator = _split_last(decided)
    if not isinstance(calibrator, CalibratedClassifierCV):
        return refitted
    head, learner = _split_last(refitted)
    frozen = FrozenEstimator(learner)
    moved = copy.copy(calibrator)
    moved.estimator = frozen
    moved.calibrated_classifiers_ = [
        _CalibratedClassifier(frozen, part.calibrators, classes=part.classes, method=part.method)
        for part in calibrator.calibrated_classifiers_
    ]
    if head is None:
        return moved
    return Pipeline([*refitted.steps[:-1], (refitted.steps[-1][0], moved)])


def choose_threshold(positive: np.ndarray, classes: np.ndarray, objective: str) -> float | None:
    """Return the cut of P(positive) best for `objective` on these rows (None unless both classes occur).

    scikit-learn's `roc_curve` counts true and false positives at every distinct score at once; F1
    (2TP / (2TP + FP + FN)) or the cost (FP x cost_fp + FN x cost_fn) is read off those counts. Every cut between
    two neighbouring scores labels these rows alike, so the cut is the middle of the widest such interval that
    is best: the answer least sensitive to scores that move a little on new rows.
    """
    from sklearn.metrics import roc_curve

    if len(np.unique(classes)) < 2:
        return None
    fpr, tpr, scores = roc_curve(classes, positive, drop_intermediate=False)
    positives, negatives = int(classes.sum()), int(len(classes) - classes.sum())
    true_pos, false_pos = tpr * positives, fpr * negatives
    false_neg = positives - true_pos
    costs = parse_objective(objective)
    if costs is None:
        value = 2 * true_pos / np.maximum(2 * true_pos + false_pos + false_neg, 1e-12)
    else:
        value = -(costs[0] * false_pos + costs[1] * false_neg)
    best = np.flatnonzero(value >= value.max() - 1e-12)
    first = last = int(best[0])
    while last + 1 < len(value) and last + 1 in best:
        last += 1
    upper = min(float(scores[first]), 1.0)  # scores[0] is inf: nothing positive
    lower = float(scores[last + 1]) if last + 1 < len(scores) else 0.0
    return (upper + lower) / 2


def finalize(
    model: Any, val_features: Any, val_labels: Any, profile: ReferenceProfile, objective: str = F1
) -> tuple[Any, Decision]:
    """Calibrate `model` when its validation ECE is over ECE_LIMIT, then choose a binary threshold.

    `val_features`/`val_labels` are validation rows the model was not fitted on, labels as its fit took them.
    Call it on the model as it will be saved (after any `prepare_for_saving`). A regression model comes back
    as it is, with a decision that changes nothing.

    Raises:
        ValueError: a malformed objective, naming `--decision-objective`.
    """
    from components.common.modeling import predict_output
    from components.common.task import encode_labels

    parse_objective(objective)
    task = profile.task
    if not task.is_classification:
        return model, Decision(objective=objective)
    classes = encode_labels(task, val_labels)
    uncalibrated, output = model, predict_output(model, task, val_features)
    before = expected_calibration_error(output, classes)
    after, method = before, NONE
    if before > ECE_LIMIT and len(np.unique(classes)) == len(task.classes):
        method = ISOTONIC if len(classes) >= ISOTONIC_MIN_ROWS else SIGMOID
        model = calibrated(model, val_features, val_labels, method)
        output = predict_output(model, task, val_features)
        after = expected_calibration_error(output, classes)
    if method != NONE and after >= before:  # a calibrator that does not help on these rows is not kept
        model, after, method = uncalibrated, before, NONE
        output = predict_output(model, task, val_features)
    threshold = choose_threshold(output[:, 1], classes, objective) if task.kind == BINARY else None
    return model, Decision(threshold, objective, method, before, after)
