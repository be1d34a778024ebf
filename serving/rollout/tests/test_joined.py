"""The cluster's pairing (`core/joined.py`): stored answers of two versions joined by (x-request-id, row)."""

from serving.rollout.core.churn import check_churn
from serving.rollout.core.joined import StoredAnswer, join, pairs_of
from serving.rollout.core.paired import (
    BOTH_RIGHT,
    CANARY_MISSING,
    CANARY_ONLY,
    MISMATCHED,
    STABLE_MISSING,
    STABLE_ONLY,
)
from serving.rollout.core.spec import parse_check

STABLE, CANARY, SETTLED = "1", "2", 1_000


def stored(version: str, trace: str, row: int, answer: dict, at: int = 0, **extra) -> StoredAnswer:
    mirrored = version == CANARY
    return StoredAnswer(version, at, {**answer, "trace": trace, "row": row, "mirrored": mirrored}, **extra)


def test_label_churn_per_slice_and_mcnemar_cells_from_stored_rows():
    rows = []
    for row in range(10):
        plan = "monthly" if row < 6 else "yearly"
        stable_label, canary_label = "a", "b" if row in (0, 1, 7) else "a"
        answer = stored(STABLE, "req", row, {"label": stable_label, "slices": {"plan": plan}})
        rows.append(StoredAnswer(STABLE, 0, answer.answer, "a") if row < 4 else answer)
        rows.append(stored(CANARY, "req", row, {"label": canary_label}))
    # Another request the stable answered and no mirror reached, a canary row whose original was not stored,
    # and rows of other versions or not mirrored: none of them pairs.
    rows += [stored(STABLE, "lone", 0, {"label": "a"}), stored(CANARY, "copy", 0, {"label": "a"})]
    rows += [stored("3", "req", 0, {"label": "b"}), StoredAnswer(CANARY, 0, {"label": "b", "trace": "req", "row": 1})]
    counts = join(rows, STABLE, CANARY, SETTLED)
    assert (counts.pairs, counts.churned) == (10, 3)
    assert counts.slices == {("plan", "monthly"): [6, 2], ("plan", "yearly"): [4, 1]}
    assert counts.unpaired == {CANARY_MISSING: 1, STABLE_MISSING: 1}
    assert counts.labelled == {STABLE_ONLY: 2, BOTH_RIGHT: 2}
    check = parse_check({"name": "shadow-churn", "maxChurn": 0.05, "minPredictions": 10, "failureLimit": 2}, "c")
    detail = check_churn(check, counts, shadow=True, slices=["plan"]).detail
    assert "label churn 30.00% of 10 paired rows" in detail
    assert "plan: monthly 33.3% of 6, yearly 25.0% of 4" in detail
    assert "only the canary right 0, only the stable 2" in detail


def test_regressors_duplicates_young_halves_and_other_shapes_are_never_paired_wrong():
    rows = [
        stored(STABLE, "r", 0, {"prediction": 100.0}),
        stored(CANARY, "r", 0, {"prediction": 104.0}),  # within 5 %
        stored(STABLE, "r", 1, {"prediction": 100.0}),
        stored(CANARY, "r", 1, {"prediction": 110.0}),  # beyond
        stored(STABLE, "r", 2, {"prediction": 1.0}),
        stored(CANARY, "r", 2, {"label": "x"}),  # another shape
        stored(STABLE, "twice", 0, {"prediction": 1.0}),
        stored(CANARY, "twice", 0, {"prediction": 1.0}),
        stored(CANARY, "twice", 0, {"prediction": 9.0}),
        stored(STABLE, "young", 0, {"prediction": 1.0}, at=SETTLED),  # its copy may still be in a writer's queue
    ]
    counts = join(rows, STABLE, CANARY, SETTLED)
    assert (counts.pairs, counts.churned) == (2, 1)
    assert counts.unpaired == {MISMATCHED: 1, "duplicate": 1}
    assert join(rows, STABLE, CANARY, SETTLED + 1).unpaired[CANARY_MISSING] == 1
    assert CANARY_ONLY not in counts.labelled


def test_the_exported_gauges_read_back_into_the_same_counts():
    samples = [
        ("plinth_shadow_store_pairs", {"model_version": CANARY, "stable_version": STABLE}, 12.0),
        ("plinth_shadow_store_churned", {"model_version": CANARY, "stable_version": STABLE}, 3.0),
        (
            "plinth_shadow_store_pairs",
            {"model_version": CANARY, "stable_version": STABLE, "feature": "plan", "value": "monthly"},
            5.0,
        ),
        ("plinth_shadow_store_unpaired", {"model_version": CANARY, "stable_version": STABLE, "reason": "x"}, 2.0),
        ("plinth_shadow_store_pairs", {"model_version": CANARY, "stable_version": "0"}, 99.0),
    ]
    counts = pairs_of(samples, STABLE, CANARY)
    assert counts is not None
    assert (counts.pairs, counts.churned, counts.unpaired) == (12, 3, {"x": 2})
    assert counts.slices == {("plan", "monthly"): [5, 0]}
    assert pairs_of(samples, STABLE, "4") is None
    assert pairs_of(samples, None, CANARY) is None
