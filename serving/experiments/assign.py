"""Sticky assignment: a user's key is hashed to one of 10,000 buckets, and each variant owns a range of them.

The one function every path uses: the local router in experiment mode, and in a cluster whatever computes
the `x-plinth-variant` header the HTTPRoute matches (an edge proxy, the calling application, or
`python -m serving.experiments assign`). The algorithm is stated so that any language can reproduce it:

    bucket = int.from_bytes(sha256(f"{experiment}:{key}".encode()).digest()[:8], "big") % 10000

and variants own consecutive ranges in spec order, `weight x 100` buckets each. The experiment's name salts
the hash, so two experiments split the same users independently. Nothing is stored: the same key meets the
same variant after any restart, on any replica.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

from serving.experiments.spec import ExperimentSpec

BUCKETS = 10_000
# The header a cluster's HTTPRoute matches: the variant an upstream computed with `variant_of`.
VARIANT_HEADER = "x-plinth-variant"


def bucket(experiment: str, key: str) -> int:
    """Return the key's bucket in [0, BUCKETS) for this experiment."""
    digest = hashlib.sha256(f"{experiment}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


class Assigner:
    """Maps keys to variants by bucket; requests without a key get a random variant by weight."""

    def __init__(self, experiment: str, names: Sequence[str], weights: Sequence[int]) -> None:
        if len(names) != len(weights) or sum(weights) != 100:
            raise ValueError(f"weights must sum to 100 over the variants, got {list(weights)}")
        self.experiment = experiment
        self.names = tuple(names)
        self.weights = tuple(weights)
        # Upper bucket bound (exclusive) of each variant's range.
        self.bounds = tuple(total * BUCKETS // 100 for total in accumulate(weights))

    @classmethod
    def of(cls, spec: ExperimentSpec) -> Assigner:
        """Return the assigner of an experiment spec."""
        return cls(spec.name, [v.name for v in spec.variants], [v.weight for v in spec.variants])

    def variant_of(self, key: str) -> str:
        """Return the variant this key always meets."""
        return self.names[bisect_right(self.bounds, bucket(self.experiment, key))]

    def random_variant(self, rng: random.Random | None = None) -> str:
        """Return a variant drawn by weight, for a request without a key (not sticky, counted apart)."""
        return (rng or random).choices(self.names, weights=self.weights)[0]
