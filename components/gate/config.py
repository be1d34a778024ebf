"""The gate's settings: the margin, the primary metric and the opt-in floors, as the pipeline passes them."""

from __future__ import annotations

from dataclasses import dataclass

from components.common.task import Task
from components.validate.thresholds import flag

# The floor parameter of each metric that can have one.
FLOOR_PARAMETERS = {"roc_auc": "min_roc_auc", "accuracy": "min_accuracy", "r2": "min_r2"}


@dataclass(frozen=True)
class GateConfig:
    """Pipeline parameters of the gate; a floor of None (the default) is no floor."""

    margin: float
    min_roc_auc: float | None = None
    min_accuracy: float | None = None
    min_r2: float | None = None
    primary_metric: str = ""

    def __post_init__(self) -> None:
        """Reject settings that would make the gate meaningless, naming the flag."""
        if self.margin <= 0:
            raise ValueError(
                f"margin ({flag('margin')}) must be > 0 (the winner must beat the baseline), got {self.margin}"
            )
        for name in ("min_roc_auc", "min_accuracy"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} ({flag(name)}) must be in [0, 1], got {value}")
        if self.min_r2 is not None and self.min_r2 > 1.0:
            raise ValueError(f"min_r2 ({flag('min_r2')}) must be at most 1, got {self.min_r2}")

    def floors(self, task: Task) -> dict[str, float]:
        """Return the absolute thresholds that were set and apply to `task` (higher is better for each)."""
        metrics = ("roc_auc", "accuracy") if task.is_classification else ("r2",)
        floors = {metric: getattr(self, FLOOR_PARAMETERS[metric]) for metric in metrics}
        return {metric: floor for metric, floor in floors.items() if floor is not None}


def parse_floor(parameter: str, text: str) -> float | None:
    """Return a floor pipeline parameter as a number, or None when empty (no floor).

    KFP parameters cannot be None on every runner (kfp.local refuses optional numbers), so floors travel as
    text: "" is none, anything else must be a number.

    Raises:
        ValueError: `text` is neither empty nor a number; the message names the parameter and its flag.
    """
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"{parameter} ({flag(parameter)}) must be a number or empty (no floor), got {text!r}"
        ) from None
