"""How each candidate family builds its model from searched parameters: one builder for search and refit.

The search shards and the training step must build the very same estimator for the same parameters, so
both ask `builder` here: it applies the family's `build_model` to the step's fixed arguments (profile,
seed, device, time budget, passes) and leaves the searched keywords open. Imports are per family, so a
step loads only the framework it trains.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from components.common.modeling import Estimator
from components.common.profile import ReferenceProfile

# What builds an unfitted model from the searched keyword parameters (the family's build_model, partly applied).
Build = Callable[..., Estimator]

# The families a search can run for, in the pipeline's order.
FAMILIES = ("sklearn", "xgboost", "torch", "hgb")


def builder(
    family: str,
    profile: ReferenceProfile,
    seed: int,
    device: str,
    time_budget_s: float,
    max_passes: int = 20,
    trial: bool = False,
) -> Build:
    """Return `family`'s build_model with everything but the searched keyword parameters applied.

    A `trial` model fits on one thread where that changes only its speed (XGBoost: short fits, see its
    build_model); the refit of the winner takes the family's usual threads and gets the same model.
    """
    if family == "sklearn":
        from components.train_sklearn.core import build_model as sklearn_model

        return partial(sklearn_model, profile, seed, time_budget_s=time_budget_s)
    if family == "xgboost":
        from components.train_xgboost.core import build_model as xgboost_model

        return partial(xgboost_model, profile, seed, device, time_budget_s=time_budget_s, n_jobs=1 if trial else 2)
    if family == "torch":
        from components.train_torch.core import build_model as torch_model

        return partial(torch_model, profile, seed, device, epochs=max_passes, time_budget_s=time_budget_s)
    if family == "hgb":
        from components.train_hgb.core import build_model as hgb_model

        return partial(hgb_model, profile, seed, time_budget_s=time_budget_s)
    raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
