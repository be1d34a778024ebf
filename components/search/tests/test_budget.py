"""The search's row budget: trials fit on a seeded, stratified sample when the split has more rows than it."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.common.profile import build_profile
from components.common.task import infer_task
from components.common.tests.imbalanced import TARGET, imbalanced_frame
from components.search import budget, core


def test_a_sample_keeps_each_class_share_and_every_class_seeded():
    labels = pd.Series(["a"] * 9000 + ["b"] * 990 + ["rare"] * 10).sample(frac=1.0, random_state=0)
    labels = labels.reset_index(drop=True)
    positions = budget.sample_positions(labels, 1000, seed=3, stratify=True)
    picked = labels.iloc[positions]
    assert abs(len(picked) - 1000) <= 3
    assert list(positions) == sorted(set(positions))  # distinct rows, in the table's order
    assert picked.value_counts().to_dict() == {"a": 900, "b": 99, "rare": 1}
    lone = pd.concat([labels, pd.Series(["once"])], ignore_index=True)
    assert "once" in set(lone.iloc[budget.sample_positions(lone, 1000, seed=3, stratify=True)])
    assert np.array_equal(positions, budget.sample_positions(labels, 1000, seed=3, stratify=True))
    assert not np.array_equal(positions, budget.sample_positions(labels, 1000, seed=4, stratify=True))
    plain = budget.sample_positions(pd.Series(np.arange(5000.0)), 700, seed=0, stratify=False)
    assert len(plain) == len(set(plain)) == 700
    assert np.array_equal(budget.sample_positions(labels, 20_000, 0, True), np.arange(len(labels)))
    with pytest.raises(ValueError, match="rows must be at least 1"):
        budget.sample_positions(labels, 0, 0, True)
    assert budget.describe(100_000, 640_000) == "searched on 100,000 of 640,000 rows"


def test_a_search_step_fits_its_trials_on_the_budget_and_scores_them_on_the_capped_validation_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    frame = imbalanced_frame(rows=3000)
    profile = build_profile(frame, TARGET, infer_task(frame[TARGET]))
    paths = {name: str(tmp_path / f"{name}.parquet") for name in ("train", "validation")}
    frame.iloc[:2000].to_parquet(paths["train"], index=False)
    frame.iloc[2000:].to_parquet(paths["validation"], index=False)
    (tmp_path / "profile.json").write_text(json.dumps(profile.to_dict()))
    monkeypatch.setattr(budget, "TRIAL_ROWS", 500)
    monkeypatch.setattr(budget, "SCORE_ROWS", 300)
    fitted: list[tuple[int, float]] = []
    real_builder = core.builder

    def recording_builder(*args: Any, **kwargs: Any) -> Any:
        build = real_builder(*args, **kwargs)

        @functools.wraps(build)  # the first trial reads the fixed settings off the signature
        def build_and_record(**params: Any) -> Any:
            model = build(**params)
            fit = model.fit

            def fit_and_record(x: pd.DataFrame, y: pd.Series) -> Any:
                fitted.append((len(x), float(y.mean())))
                return fit(x, y)

            monkeypatch.setattr(model, "fit", fit_and_record)
            return model

        return build_and_record

    monkeypatch.setattr(core, "builder", recording_builder)
    out = core.run(
        "sklearn", paths["train"], paths["validation"], str(tmp_path / "profile.json"), 0, 0, 1, 3, 60.0, "", "cpu",
        60.0, 20,
    )  # fmt: skip
    assert len(core.ShardResult.from_json(out).trials) == 3
    share = float(frame.iloc[:2000][TARGET].mean())
    assert [rows for rows, _ in fitted] == [500, 500, 500]
    assert all(abs(positives - share) < 0.01 for _, positives in fitted)  # stratified: the class share kept
    assert "search sklearn: searched on 500 of 2,000 rows, scored on 300" in capsys.readouterr().out
