"""KFP shell of the gate step."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def gate(
    sklearn_result: str,
    xgboost_result: str,
    torch_result: str,
    hgb_result: str,
    test: Input[Dataset],
    profile: Input[Artifact],
    tracking_uri: str,
    model_name: str,
    run_id: str,
    primary_metric: str,
    min_roc_auc: str,
    min_accuracy: str,
    min_r2: str,
    margin: float,
    decision: Output[Artifact],
) -> bool:
    """Pick the best candidate; it must beat the naive baseline and the champion by `margin`, and any floor set.

    Args:
        sklearn_result: Evaluated scikit-learn candidate (JSON).
        xgboost_result: Evaluated XGBoost candidate (JSON).
        torch_result: Evaluated PyTorch candidate (JSON).
        hgb_result: Evaluated HistGradientBoosting candidate (JSON).
        test: Held-out rows, to score the champion on the same data.
        profile: The validated profile (its task decides the metrics).
        tracking_uri: MLflow tracking URI.
        model_name: Registered model name.
        run_id: Parent MLflow run id.
        primary_metric: Metric that picks the winner and is compared with the champion; empty for the task's
            default (roc_auc for classification, r2 for regression).
        min_roc_auc: Lowest acceptable ROC AUC (0-1), classification; empty (the default) for no floor.
        min_accuracy: Lowest acceptable accuracy (0-1), classification; empty for no floor.
        min_r2: Lowest acceptable R² (at most 1), regression; empty for no floor.
        margin: Amount of the primary metric by which the winner must beat the naive baseline (the prior, or the
            mean) and the champion (> 0).
        decision: Winner, alias and reason (JSON), for the register step and the dashboard.

    Returns:
        Whether a new version is proposed. (A single output: kfp.local resolves `dsl.If` conditions on a
        task's `Output` but not on named outputs.)
    """
    import json
    from dataclasses import asdict

    from components.gate.config import GateConfig, parse_floor
    from components.gate.core import run

    config = GateConfig(
        margin=margin,
        min_roc_auc=parse_floor("min_roc_auc", min_roc_auc),
        min_accuracy=parse_floor("min_accuracy", min_accuracy),
        min_r2=parse_floor("min_r2", min_r2),
        primary_metric=primary_metric,
    )
    results = [sklearn_result, xgboost_result, torch_result, hgb_result]
    verdict = run(results, test.path, profile.path, tracking_uri, model_name, run_id, config)
    with open(decision.path, "w", encoding="utf-8") as handle:
        json.dump(asdict(verdict), handle)
    return verdict.passed
