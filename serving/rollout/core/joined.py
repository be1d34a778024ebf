"""Paired shadow answers in a cluster: the stable's and the canary's stored predictions joined by request id.

A Gateway API `RequestMirror` discards the canary's answer, so nothing in the request path sees both. Each
model service instead stores, with every prediction it logs, the gateway's `x-request-id` of its request,
the row's place in it and whether the request was a mirrored copy (`serving/model_service/trace.py`); Envoy
sends the mirrored copy with the original's headers, so the two versions' rows share (trace, row). This
module joins them into the same `PairCounts` the local router's pairing produces (`paired.py`), so the
`shadow-churn` check judges both edges alike: label churn (classifiers) or a relative difference above 5 %
(regressors), per slice of the stable row's categorical values, and McNemar's cell where the stable's
answer got a label.

A row is paired only with the other version's row of the same (trace, row): a stable row is the original
(not mirrored), a canary row the mirrored copy. Nothing is paired wrong:

- a (trace, row) stored twice by one version (a client that reuses an `x-request-id`) pairs nothing:
  `duplicate`;
- a half without its other half once the join is settled (older than the grace the writers need to flush)
  counts as `canary_missing` / `stable_missing`; younger, it waits for the next look;
- answers that cannot be compared (another shape) count as `mismatched`.

Pure: rows in, counts out. Reading the rows is the store's (`serving/model_service/shadow_pairs.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from serving.rollout.core.paired import (
    CANARY_MISSING,
    DUPLICATE,
    MISMATCHED,
    STABLE_MISSING,
    PairCounts,
    SliceValues,
    cell,
    verdicts,
)

# The answer's keys a service stores beside the prediction (`trace.py`).
TRACE_KEY, ROW_KEY, MIRRORED_KEY, SLICES_KEY = "trace", "row", "mirrored", "slices"
NO_TRUTH = object()


@dataclass(frozen=True)
class StoredAnswer:
    """One stored prediction of either version: its version, time (Unix ms), answer and label's truth if any."""

    model_version: str
    created_at: int
    answer: dict[str, Any]
    truth: Any = field(default=NO_TRUTH)

    @property
    def key(self) -> tuple[str, int] | None:
        """Return (gateway request id, row), None for a prediction stored without a trace."""
        trace, row = self.answer.get(TRACE_KEY), self.answer.get(ROW_KEY)
        return (trace, row) if isinstance(trace, str) and isinstance(row, int) else None


def halves(
    rows: Iterable[StoredAnswer], stable_version: str, canary_version: str
) -> tuple[dict[tuple[str, int], list[StoredAnswer]], dict[tuple[str, int], list[StoredAnswer]]]:
    """Return the stable's original rows and the canary's mirrored rows, by (trace, row)."""
    stable: dict[tuple[str, int], list[StoredAnswer]] = {}
    canary: dict[tuple[str, int], list[StoredAnswer]] = {}
    for row in rows:
        key, mirrored = row.key, row.answer.get(MIRRORED_KEY) is True
        if key is None:
            continue
        if row.model_version == stable_version and not mirrored:
            stable.setdefault(key, []).append(row)
        elif row.model_version == canary_version and mirrored:
            canary.setdefault(key, []).append(row)
    return stable, canary


def join(rows: Iterable[StoredAnswer], stable_version: str, canary_version: str, settled_before_ms: int) -> PairCounts:
    """Return the pairs of the two versions' stored answers (see the module docstring).

    `settled_before_ms`: a half stored before this time whose other half is missing is counted unpaired;
    a younger one may still be in its writer's queue and is left for the next look.
    """
    stable, canary = halves(rows, stable_version, canary_version)
    counts, slices = PairCounts(), SliceValues()
    for key in sorted(stable.keys() | canary.keys()):
        mine, theirs = stable.get(key, []), canary.get(key, [])
        if len(mine) > 1 or len(theirs) > 1:
            counts.add(PairCounts(unpaired={DUPLICATE: 1}))
            continue
        if not mine or not theirs:
            alone = (mine or theirs)[0]
            if alone.created_at < settled_before_ms:
                counts.add(PairCounts(unpaired={CANARY_MISSING if mine else STABLE_MISSING: 1}))
            continue
        counts.add(pair(mine[0], theirs[0], slices))
    return counts


def pair(stable: StoredAnswer, canary: StoredAnswer, slices: SliceValues) -> PairCounts:
    """Return one paired row's counts: churned or not, per slice, and McNemar's cell with a label."""
    found = verdicts([stable.answer], [canary.answer])
    if found is None:
        return PairCounts(unpaired={MISMATCHED: 1})
    churned = int(found[0])
    event = PairCounts(1, churned)
    stored_slices = stable.answer.get(SLICES_KEY)
    for key in slices.keys(stored_slices if isinstance(stored_slices, dict) else {}):
        event.add(PairCounts(slices={key: [1, churned]}))
    if stable.truth is not NO_TRUTH and "label" in stable.answer and "label" in canary.answer:
        labels = str(stable.answer["label"]), str(canary.answer["label"])
        event.add(PairCounts(labelled={cell(*labels, stable.truth): 1}))
    return event


# The live-quality process's gauges of these counts (`serving/model_service/shadow_pairs.py`).
PAIRS_GAUGE, CHURNED_GAUGE = "plinth_shadow_store_pairs", "plinth_shadow_store_churned"
UNPAIRED_GAUGE, LABELLED_GAUGE = "plinth_shadow_store_unpaired", "plinth_shadow_store_labelled"
GAUGES = (PAIRS_GAUGE, CHURNED_GAUGE, UNPAIRED_GAUGE, LABELLED_GAUGE)


def pairs_of(
    samples: Iterable[tuple[str, Mapping[str, str], float]], stable_version: str | None, canary_version: str | None
) -> PairCounts | None:
    """Return the stored pairs of the two versions from (sample name, labels, value) triples.

    None when no series names this pair (the exporter has not joined the phase's rows yet, there is none, or
    no request carried an `x-request-id`); the Prometheus source reads that as no pairs so far.
    """
    if not stable_version or not canary_version:
        return None
    counts, seen = PairCounts(), False
    for name, labels, value in samples:
        if labels.get("model_version") != canary_version or labels.get("stable_version") != stable_version:
            continue
        seen, n = True, int(value)
        feature, slice_value = labels.get("feature", ""), labels.get("value", "")
        if name in (PAIRS_GAUGE, CHURNED_GAUGE) and feature:
            cell_counts = counts.slices.setdefault((feature, slice_value), [0, 0])
            cell_counts[0 if name == PAIRS_GAUGE else 1] += n
        elif name == PAIRS_GAUGE:
            counts.pairs += n
        elif name == CHURNED_GAUGE:
            counts.churned += n
        elif name == UNPAIRED_GAUGE:
            counts.unpaired[labels.get("reason", "")] = counts.unpaired.get(labels.get("reason", ""), 0) + n
        elif name == LABELLED_GAUGE:
            counts.labelled[labels.get("cell", "")] = counts.labelled.get(labels.get("cell", ""), 0) + n
    return counts if seen else None
