"""KFP shell of the HistGradientBoosting training step (CPU pool: scikit-learn's boosting has no GPU path)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_hgb(
    train: Input[Dataset],
    validation: Input[Dataset],
    profile: Input[Artifact],
    seed: int,
    tracking_uri: str,
    run_id: str,
    model: Output[Model],
    search_results: list[str],
    decision_objective: str = "f1",
    refit_full: bool = True,
    time_budget_s: float = 600.0,
) -> str:
    """Train the HistGradientBoosting candidate (native categories, early stopping on its own validation rows).

    Args:
        train: Training rows.
        validation: Validation rows the search scored on and the decision is chosen on; refit_full fits on them too.
        search_results: The family's search shards' results (dsl.Collected); no trials: fixed settings.
        decision_objective: What the binary threshold is chosen for: "f1", or "cost:FP,FN" (a cost matrix).
        refit_full: Refit the winner's settings on training + validation rows, keeping the decision chosen on
            the validation rows (components/search/refit.py); False saves the fit on the training rows.
        profile: The validated profile (task, feature kinds), stored with the model.
        seed: Random seed.
        tracking_uri: MLflow tracking URI.
        run_id: Parent MLflow run id; the candidate logs to a nested run.
        time_budget_s: Seconds the fit may take; it stops after the chunk of rounds that crosses it, and logs
            that it did.
        model: The fitted model (MLflow sklearn format, skops).

    Returns:
        The candidate as JSON: name, nested run id, logged model URI.
    """
    from components.common.candidate import train_candidate
    from components.search.families import builder
    from components.train_hgb.core import as_saved

    trained = train_candidate(
        "hgb",
        lambda validated, **params: builder("hgb", validated, seed, "cpu", time_budget_s)(**params),
        train.path,
        profile.path,
        tracking_uri,
        run_id,
        model.path,
        "cpu",
        prepare_for_saving=as_saved,
        searched=search_results,
        validation_path=validation.path,
        decision_objective=decision_objective,
        refit_full=refit_full,
    )
    return trained.to_json()
