"""What one check says about one interval: its status and, for a comparison with the stable, the evidence.

A module of its own so that the checks (`comparisons`, `churn`, `cbpe`) and the judge that runs them
(`analyse`) share these types without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serving.rollout.core.sequential import SequentialResult

PASS, FAIL, NO_DATA, PENDING = "pass", "fail", "no_data", "pending"
# A check whose signal cannot exist for this canary (input drift of a model without a reference profile):
# neither a pass nor a failure, and it does not hold the step.
NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check in one interval."""

    name: str
    status: str
    value: float
    detail: str
    # The comparison with the stable (checks with alpha and minEffect, once both tracks have data).
    evidence: SequentialResult | None = None
    compared: str = ""

    def evidence_record(self) -> dict[str, Any] | None:
        """Return the evidence as JSON-safe data for the history: decision, bound crossed, interval, sizes."""
        return None if self.evidence is None else {"compared": self.compared, **self.evidence.to_record()}
