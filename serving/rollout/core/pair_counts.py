"""What a shadow phase's pairing counted: paired rows, churned ones, per slice, unpaired by reason, McNemar cells.

Both pairings fill it, the local router's (`paired.py`) and the cluster's from the store (`joined.py`), and the
`shadow-churn` check (`churn.py`) judges it, so the two edges give the same evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PairCounts:
    """Rows answered by both tracks, those that churned, per slice, unpaired tickets and labelled cells."""

    pairs: int = 0
    churned: int = 0
    # (feature, value) -> [pairs, churned].
    slices: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    unpaired: dict[str, int] = field(default_factory=dict)
    labelled: dict[str, int] = field(default_factory=dict)

    @property
    def churn(self) -> float:
        """Return the share of paired rows that churned (NaN without pairs)."""
        return self.churned / self.pairs if self.pairs else float("nan")

    def copy(self) -> PairCounts:
        """Return an independent copy (the live counts keep moving)."""
        return PairCounts(
            self.pairs,
            self.churned,
            {key: list(value) for key, value in self.slices.items()},
            dict(self.unpaired),
            dict(self.labelled),
        )

    def add(self, other: PairCounts) -> None:
        """Fold another count in (one event's, or an interval's)."""
        self.pairs += other.pairs
        self.churned += other.churned
        for key, (n, c) in other.slices.items():
            cell = self.slices.setdefault(key, [0, 0])
            cell[0] += n
            cell[1] += c
        for mine, theirs in ((self.unpaired, other.unpaired), (self.labelled, other.labelled)):
            for name, n in theirs.items():
                mine[name] = mine.get(name, 0) + n

    def since(self, before: PairCounts) -> PairCounts:
        """Return what was counted after `before` (a copy of these counts taken earlier)."""
        return PairCounts(
            self.pairs - before.pairs,
            self.churned - before.churned,
            {
                key: [n - before.slices.get(key, [0, 0])[0], c - before.slices.get(key, [0, 0])[1]]
                for key, (n, c) in self.slices.items()
            },
            {key: n - before.unpaired.get(key, 0) for key, n in self.unpaired.items()},
            {key: n - before.labelled.get(key, 0) for key, n in self.labelled.items()},
        )
