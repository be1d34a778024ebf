"""KFP shells of the search: the shard numbers a family's search fans out over, and one shard's study."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def search_shards(search_parallelism: int) -> list[int]:
    """Return the shard numbers 0..search_parallelism-1 that every family's search fans out over.

    Args:
        search_parallelism: Independent studies per family, run at once (dsl.ParallelFor); at least 1.

    Returns:
        The shard numbers.
    """
    if search_parallelism < 1:
        raise ValueError(f"search_parallelism must be at least 1, got {search_parallelism}")
    return list(range(search_parallelism))


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def search(
    family: str,
    train: Input[Dataset],
    validation: Input[Dataset],
    profile: Input[Artifact],
    seed: int,
    shard: int,
    shards: int,
    trials: int,
    time_s: float,
    primary_metric: str,
    time_budget_s: float = 600.0,
    max_passes: int = 20,
) -> str:
    """Run one shard of a candidate family's hyper-parameter search (a seeded Optuna TPE study).

    Args:
        family: The candidate (sklearn, xgboost, torch).
        train: Training rows the trials fit on.
        validation: Validation rows the trials are scored on (never the test rows).
        profile: The validated profile (task, feature kinds).
        seed: The pipeline's seed; this shard's study is seeded seed + shard.
        shard: This shard's number (0..shards-1); shard 0 tries the fixed settings first.
        shards: Number of shards of the family's search (search_parallelism).
        trials: Trials of the family's whole search (search_trials), shared out over the shards; 0: none.
        time_s: Seconds this shard may search (search_time_s): no trial starts after them.
        primary_metric: The metric trials are scored on ("" for the task's default).
        time_budget_s: Seconds one fit may take.
        max_passes: Most passes of one MLP fit.

    Returns:
        The shard's trials as JSON, collected by the family's training step.
    """
    from components.common.device import cuda_available
    from components.search.core import run

    device = "cuda" if family != "sklearn" and cuda_available() else "cpu"
    return run(
        family,
        train.path,
        validation.path,
        profile.path,
        seed,
        shard,
        shards,
        trials,
        time_s,
        primary_metric,
        device,
        time_budget_s,
        max_passes,
    )
