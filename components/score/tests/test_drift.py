"""Drift counted chunk by chunk is validation's PSI of the whole table, in the profile's own bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from components.common.profile import build_profile, category_counts, feature_psi, psi
from components.ingest.synthetic import CHURN_TARGET, churn_table
from components.score.check import Contract
from components.score.drift import DriftTally
from components.validate.reference import category_drift_counts
from serving.model_service.columns import Batch, Column


def test_chunked_psi_equals_the_whole_tables_and_flags_a_shift():
    frame = churn_table()
    profile = build_profile(frame, CHURN_TARGET)
    features = frame.drop(columns=CHURN_TARGET)
    shifted = features.assign(age=features["age"] + 25, plan=features["plan"].where(features.index % 2 == 0, "gold"))
    types = {"age": "double", "income": "double", "plan": "string", "region": "string", "has_card": "boolean"}
    columns = [Column(name, types.get(name, "long"), True, profile.features[name]) for name in features.columns]
    contract = Contract(columns)
    tally = DriftTally(profile)
    table = pa.Table.from_pandas(shifted, preserve_index=False)
    for start in range(0, len(shifted), 250):
        batch = contract.check(table.slice(start, 250)).batch
        assert batch is not None
        tally.add(batch)
    report = tally.report()
    assert report.rows == len(shifted)
    assert np.isclose(report.psi["age"], feature_psi(profile.features["age"], shifted["age"].to_numpy()))
    plan = profile.features["plan"]
    whole = category_drift_counts(plan, category_counts(shifted["plan"]), int(shifted["plan"].isna().sum()))
    assert np.isclose(report.psi["plan"], psi(plan.expected_shares(), whole))
    assert report.drifted[:2] == sorted(["age", "plan"], key=lambda name: -report.psi[name])
    assert report.psi["region"] < report.max_psi
    assert "| age |" in report.to_markdown()


def test_a_model_without_a_profile_says_drift_is_not_scored():
    tally = DriftTally(None)
    report = tally.report()
    assert report.psi == {}
    assert "Not scored" in report.to_markdown()


def test_an_all_number_models_block_is_binned_as_its_columns_are():
    """The block path (features read along the Fortran-order block) counts as the column path, sampled or not."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.exponential(size=3000), "y": rng.integers(0, 2, 3000)})
    profile = build_profile(frame, "y")
    scored = frame.drop(columns="y").assign(a=lambda f: f["a"] + 0.5)
    scored.loc[::7, "b"] = np.nan
    contract = Contract([Column(name, "double", True, profile.features[name]) for name in ("a", "b")])
    table = pa.Table.from_pandas(scored, preserve_index=False)
    for rows_per_chunk in (10**9, 300):  # whole chunks, then a sample of each
        by_block, by_column = (
            DriftTally(profile, rows_per_chunk=rows_per_chunk),
            DriftTally(profile, rows_per_chunk=rows_per_chunk),
        )
        for start in range(0, len(scored), 1000):
            batch = contract.check(table.slice(start, 1000)).batch
            assert batch is not None
            assert batch.block is not None
            by_block.add(batch)
            by_column.add(Batch(batch.index, None, {name: batch.column(name) for name in batch.index}))
        assert all(np.array_equal(by_block.counts[name], by_column.counts[name]) for name in ("a", "b"))
        assert by_block.report() == by_column.report()
    whole = DriftTally(profile, rows_per_chunk=10**9)
    everything = contract.check(table).batch
    assert everything is not None
    whole.add(everything)
    for name in ("a", "b"):  # b's NaNs in the missing bin
        assert np.isclose(whole.report().psi[name], feature_psi(profile.features[name], scored[name].to_numpy()))
