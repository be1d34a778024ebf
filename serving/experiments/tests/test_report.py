"""The record of an experiment: one MLflow run with the versions, the evidence, the decision and the plot."""

from __future__ import annotations

import json
from pathlib import Path

from components.common.tracking import connect
from serving.experiments.decide import decide
from serving.experiments.outcomes import Outcomes, Tally
from serving.experiments.report import EXPERIMENT, History, log_experiment
from serving.experiments.spec import parse_experiment

SPEC = parse_experiment(
    {
        "name": "checkout",
        "variants": [{"name": "a", "version": "3", "weight": 50}, {"name": "b", "alias": "challenger", "weight": 50}],
        "outcome": {"metric": "label"},
        "maxDuration": "10m",
    }
)
VERSIONS = {"a": "3", "b": "4"}


def test_the_run_holds_versions_evidence_decision_and_plot(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    history = History([])
    for look, (right_a, right_b) in enumerate([(60, 70), (120, 160), (180, 260)], start=1):
        outcomes = Outcomes(
            {"3": Tally(300 * look // 3, right_a, right_a), "4": Tally(300 * look // 3, right_b, right_b)}, "accuracy"
        )
        decision = decide(SPEC, outcomes, VERSIONS, elapsed_s=10.0 * look)
        history.add(10.0 * look, decision)
    assert decision.final
    assert decision.winner == "b"
    client = connect(uri)
    run_id = log_experiment(client, uri, SPEC, VERSIONS, decision, history, 30.0, "accuracy")
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.params["variant.a.version"] == "3"
    assert run.data.params["variant.b.version"] == "4"
    assert run.data.params["alpha"] == "0.05"
    assert run.data.tags["plinth.experiment.decision"] == "winner"
    assert run.data.tags["plinth.experiment.winner"] == "b"
    low, high = decision.comparisons[0].result.interval
    assert run.data.metrics["b.interval_low"] == low > 0
    assert run.data.metrics["b.interval_high"] == high
    assert run.data.metrics["b.samples"] == 300
    assert run.data.metrics["duration_s"] == 30.0
    folder = Path(client.download_artifacts(run_id, "experiment", str(tmp_path)))
    assert [look["b"]["verdict"] for look in json.loads((folder / "checkout.json").read_text())][-1] == "better"
    assert (folder / "checkout.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
