"""KFP shell of the PyTorch training step (GPU node pool in the GPU pipeline)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_torch(
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
    max_passes: int = 20,
    time_budget_s: float = 600.0,
    torch_processes: int = 1,
) -> str:
    """Train the PyTorch MLP candidate (on CUDA when the pod has a GPU).

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
        max_passes: Most passes over the training rows (early stopping, patience 3, usually ends sooner).
        time_budget_s: Seconds the fit may take; it stops there with what it has, and logs that it did.
        torch_processes: Data-parallel processes (DDP over gloo, started by torchrun in this pod, on its
            CPUs); 1 trains in this process, on CUDA when the pod has a GPU.
        model: The fitted model (MLflow sklearn format; the network is moved to the CPU).

    Returns:
        The candidate as JSON: name, nested run id, logged model URI.
    """
    from components.common.candidate import train_candidate
    from components.common.device import cuda_available
    from components.search.families import builder
    from components.train_torch.distributed import torchrun_fit

    if torch_processes < 1:
        raise ValueError(f"torch_processes must be at least 1, got {torch_processes}")
    fit = torchrun_fit(torch_processes, seed, max_passes, time_budget_s) if torch_processes > 1 else None
    device = "cuda" if cuda_available() and fit is None else "cpu"
    trained = train_candidate(
        "torch",
        lambda validated, **params: builder("torch", validated, seed, device, time_budget_s, max_passes)(**params),
        train.path,
        profile.path,
        tracking_uri,
        run_id,
        model.path,
        device,
        extra_packages=["torch"],
        fit=fit,
        searched=search_results,
        validation_path=validation.path,
        decision_objective=decision_objective,
        refit_full=refit_full,
    )
    return trained.to_json()
