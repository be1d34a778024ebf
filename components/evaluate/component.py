"""KFP shell of the evaluate step."""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    test: Input[Dataset],
    tracking_uri: str,
    candidate: str,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
) -> str:
    """Score one candidate on the held-out set with its task's metrics; log them and the plots.

    Args:
        model: The fitted candidate (its MLmodel metadata carries the task and profile).
        test: Held-out rows (the same for every candidate).
        tracking_uri: MLflow tracking URI.
        candidate: The training step's JSON output (name, run id, model URI).
        metrics: Scalar metrics for the KFP UI.
        classification: ROC curve (binary) and confusion matrix (classification) for the KFP UI.

    Returns:
        The candidate with its task and metrics, as JSON, for the gate.
    """
    import json

    from components.evaluate.core import run

    result = run(model.path, test.path, tracking_uri, candidate)
    for key, value in result["candidate"]["metrics"].items():
        metrics.log_metric(key, value)
    if result.get("roc"):
        fpr, tpr, thresholds = result["roc"]
        classification.log_roc_curve(fpr, tpr, thresholds)
    if result.get("confusion"):
        classification.log_confusion_matrix(result["confusion"]["labels"], result["confusion"]["matrix"])
    return json.dumps({"candidate": result["candidate"]})
