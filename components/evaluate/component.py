"""KFP shell of the evaluate step."""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    test: Input[Dataset],
    target: str,
    tracking_uri: str,
    candidate: str,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
) -> str:
    """Score one candidate on the held-out set; log metrics, ROC curve and confusion matrix.

    Args:
        model: The fitted candidate.
        test: Held-out rows (the same for every candidate).
        target: Name of the label column.
        tracking_uri: MLflow tracking URI.
        candidate: The training step's JSON output (name, run id, model URI).
        metrics: Scalar metrics for the KFP UI.
        classification: ROC curve and confusion matrix for the KFP UI.

    Returns:
        The candidate with its metrics, as JSON, for the gate.
    """
    import json

    from components.evaluate.core import run

    result = run(model.path, test.path, target, tracking_uri, candidate)
    for key, value in result["candidate"]["metrics"].items():
        metrics.log_metric(key, value)
    fpr, tpr, thresholds = result["roc"]
    classification.log_roc_curve(fpr, tpr, thresholds)
    classification.log_confusion_matrix(["0", "1"], result["confusion"])
    return json.dumps({"candidate": result["candidate"]})
