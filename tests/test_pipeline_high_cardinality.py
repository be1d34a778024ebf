"""A table with a 1,000-category column trains end to end in the compiled pipeline, as `make train` runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.common import modeling
from components.common.features import prepare_features
from components.common.state import local_tracking_uri
from components.common.tests.test_high_cardinality import MERCHANTS, merchant_table
from tests.test_pipeline_local import pipeline_runs, train
from tests.test_pipeline_tasks import client_for

pytestmark = pytest.mark.integration


def test_a_1000_category_column_is_validated_trained_registered_and_served(tmp_path):
    source = tmp_path / "merchants.parquet"
    merchant_table().to_parquet(source, index=False)
    home = tmp_path / "home"
    gate = ("--min-roc-auc", "0.5", "--min-accuracy", "0.5")  # the table is hard on purpose; this is about training
    result = train(home, "--source", str(source), "--target", "churned", "--model-name", "merchants", *gate)
    assert result.returncode == 0, result.stderr[-3000:]
    client = client_for(home)
    parent = pipeline_runs(client)[0]
    report = client.download_artifacts(parent.info.run_id, "validation/report.md", str(tmp_path))
    text = Path(report).read_text(encoding="utf-8")
    assert f"`merchant` | categories | categorical, {MERCHANTS} distinct values" in text
    assert "high-cardinality: target encoding (linear, MLP, HistGradientBoosting), native categories (XGBoost)" in text
    assert "registered    : merchants v1" in result.stdout, result.stdout[-3000:]
    version = client.get_model_version_by_alias("merchants", "champion")
    model_dir = client.download_artifacts(version.run_id, "model", str(tmp_path / "model"))
    profile = modeling.load_profile(model_dir)
    assert profile.features["merchant"].high_cardinality
    model = modeling.load_model(f"models:/merchants/{version.version}")
    rows = prepare_features(merchant_table(rows=5).drop(columns="churned").assign(merchant="never-seen"), profile)
    probability = modeling.predict_output(model, profile.task, rows)
    assert probability.shape == (5, 2)
    assert np.isfinite(probability).all()
    assert local_tracking_uri(home).startswith("sqlite:")
