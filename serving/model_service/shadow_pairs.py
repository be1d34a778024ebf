"""The cluster's shadow pairing, exported by the live-quality process: stored answers joined by request id.

A Gateway API mirror discards the canary's answers, so in a cluster the `shadow-churn` check pairs the two
versions' *stored* predictions (`serving/rollout/core/joined.py`). The join runs here, in the one process
that already reads the prediction store (least privilege: the rollout controller gets no store access; this
process needs no write right), and each refresh exports its counts as gauges per version pair:

- `plinth_shadow_store_pairs{model_name, model_version, stable_version, feature, value}` and
  `plinth_shadow_store_churned{...}`: paired rows and those that churned (feature and value empty: every
  row; else per categorical value of the stable's row);
- `plinth_shadow_store_unpaired{model_name, model_version, stable_version, reason}`;
- `plinth_shadow_store_labelled{model_name, model_version, stable_version, cell}`: McNemar's cells.

`model_version` is the canary (its rows were mirrored copies), `stable_version` the version that answered the
same requests' originals. Each refresh joins everything stored in the last `window_s` (default 1 h: it must
cover the shadow phase), so the gauges are the rollout's counts so far; the controller reads them as they are.
Only mirrored rows and the originals they share a request id with are read, not the whole window's traffic.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from serving.model_service.store import LABELS, PREDICTIONS, PredictionStore, StoreError
from serving.rollout.core.joined import (
    CHURNED_GAUGE,
    LABELLED_GAUGE,
    MIRRORED_KEY,
    PAIRS_GAUGE,
    TRACE_KEY,
    UNPAIRED_GAUGE,
    StoredAnswer,
    join,
)
from serving.rollout.core.paired import PairCounts

logger = logging.getLogger("plinth.shadow_pairs")
DEFAULT_WINDOW_S = 3600.0
# A half whose other half is missing counts as unpaired once it is this old (the writers flush every 0.2 s).
GRACE_S = 10.0
# How the recorder's JSON spells the keys (json.dumps' default separators), for a LIKE the database can run.
MIRRORED_TEXT = f"%{json.dumps({MIRRORED_KEY: True})[1:-1]}%"
TRACED_TEXT = f"%{json.dumps(TRACE_KEY)}: %"
PAIR_LABELS = ["model_name", "model_version", "stable_version"]
Rows = dict[tuple[str, str], list[StoredAnswer]]


def _select(*where: Any) -> sa.Select[Any]:
    """Return stored predictions (and their label's truth, if any) matching `where`."""
    joined = PREDICTIONS.outerjoin(LABELS, LABELS.c.request_id == PREDICTIONS.c.request_id)
    columns = (PREDICTIONS.c.model_name, PREDICTIONS.c.model_version, PREDICTIONS.c.created_at)
    return sa.select(*columns, PREDICTIONS.c.prediction, LABELS.c.truth).select_from(joined).where(*where)


def read_rows(store: PredictionStore, since_ms: int) -> Rows:
    """Return the traced rows of every model with mirrored rows since `since_ms`, by (model, version)."""
    p = PREDICTIONS.c
    rows: Rows = {}
    mirrored = store.read(_select(p.created_at >= since_ms, p.prediction.like(MIRRORED_TEXT)))
    for model in sorted({row.model_name for row in mirrored}):
        times = [row.created_at for row in mirrored if row.model_name == model]
        grace = int(GRACE_S * 1000)
        span = (p.created_at >= min(times) - grace, p.created_at <= max(times) + grace)
        for row in store.read(_select(p.model_name == model, *span, p.prediction.like(TRACED_TEXT))):
            answer = json.loads(row.prediction)
            stored = (
                StoredAnswer(row.model_version, row.created_at, answer)
                if row.truth is None
                else StoredAnswer(row.model_version, row.created_at, answer, json.loads(row.truth))
            )
            rows.setdefault((model, row.model_version), []).append(stored)
    return rows


def version_pairs(rows: Rows, settled_before_ms: int) -> dict[tuple[str, str, str], PairCounts]:
    """Return the counts of every (model, canary, stable) whose rows share at least one request id."""
    found = {}
    for (model, canary), canary_rows in rows.items():
        keys = {row.key for row in canary_rows if row.answer.get(MIRRORED_KEY) is True} - {None}
        for (other_model, stable), stable_rows in rows.items():
            if other_model != model or stable == canary or not keys & {row.key for row in stable_rows}:
                continue
            found[(model, canary, stable)] = join([*stable_rows, *canary_rows], stable, canary, settled_before_ms)
    return found


class ShadowPairs(Collector):
    """Joins the store's mirrored rows with their originals every refresh; a collector of the counts."""

    def __init__(self, store: PredictionStore, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.store, self.window_s = store, window_s
        self.counts: dict[tuple[str, str, str], PairCounts] = {}
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Read and join again; False (values kept, logged) when the store cannot be read."""
        now = self.store.now_ms()
        try:
            rows = read_rows(self.store, now - int(self.window_s * 1000))
        except StoreError as error:
            logger.warning("shadow pairs: %s (values kept from the last refresh)", error)
            return False
        counts = version_pairs(rows, now - int(GRACE_S * 1000))
        with self._lock:
            self.counts = counts
        return True

    def collect(self) -> Iterator[Metric]:
        """Yield the four gauge families."""
        text = "of the shadow phase's stored answers, joined by x-request-id"
        pairs = GaugeMetricFamily(PAIRS_GAUGE, f"Paired rows {text}.", labels=[*PAIR_LABELS, "feature", "value"])
        churned = GaugeMetricFamily(
            CHURNED_GAUGE,
            f"Paired rows answered differently {text}.",
            labels=[*PAIR_LABELS, "feature", "value"],
        )
        unpaired = GaugeMetricFamily(UNPAIRED_GAUGE, f"Unpaired rows {text}.", labels=[*PAIR_LABELS, "reason"])
        labelled = GaugeMetricFamily(LABELLED_GAUGE, f"Labelled pairs {text}.", labels=[*PAIR_LABELS, "cell"])
        with self._lock:
            for ident, counts in sorted(self.counts.items()):
                pairs.add_metric([*ident, "", ""], counts.pairs)
                churned.add_metric([*ident, "", ""], counts.churned)
                for (feature, value), (n, c) in sorted(counts.slices.items()):
                    pairs.add_metric([*ident, feature, value], n)
                    churned.add_metric([*ident, feature, value], c)
                for reason, n in sorted(counts.unpaired.items()):
                    unpaired.add_metric([*ident, reason], n)
                for name, n in sorted(counts.labelled.items()):
                    labelled.add_metric([*ident, name], n)
        yield from (pairs, churned, unpaired, labelled)
