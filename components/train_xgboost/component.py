"""KFP shell of the XGBoost training step (GPU node pool in the GPU pipeline)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_xgboost(
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
    dask_scheduler: str = "",
) -> str:
    """Train the XGBoost candidate (`hist`, on CUDA when the pod has a GPU).

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
        time_budget_s: Seconds the fit may take; it stops there with what it has, and logs that it did.
        dask_scheduler: A Dask scheduler's address (tcp://host:8786): the split is read and the booster
            trained by that cluster's workers (`xgboost.dask`, on their CPUs); "" trains in this pod.
        model: The fitted model (MLflow sklearn format).

    Returns:
        The candidate as JSON: name, nested run id, logged model URI.
    """
    from components.common.candidate import train_candidate
    from components.common.device import cuda_available
    from components.search.families import builder
    from components.train_xgboost.core import for_cpu_inference

    fit, location = None, train.path
    if dask_scheduler:
        from components.train_xgboost.distributed import dask_fit, worker_location

        fit, location = dask_fit(dask_scheduler), worker_location(train.uri, train.path)
    device = "cuda" if cuda_available() and not dask_scheduler else "cpu"
    trained = train_candidate(
        "xgboost",
        lambda validated, **params: builder("xgboost", validated, seed, device, time_budget_s)(**params),
        location,
        profile.path,
        tracking_uri,
        run_id,
        model.path,
        device,
        prepare_for_saving=for_cpu_inference,
        extra_packages=["xgboost"],
        fit=fit,
        searched=search_results,
        validation_path=validation.path,
        decision_objective=decision_objective,
        refit_full=refit_full,
    )
    return trained.to_json()
