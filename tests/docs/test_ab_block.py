"""`make ab`, typed as the root README writes it, in a bare shell with a fresh PLINTH_HOME: a recorded decision.

The home is empty, so the command trains its own drill champion and challenger; the simulated users make the
challenger better by the default lift, so the decision must name it, every user must have met one variant
only, and the MLflow run must hold the variants' versions, the evidence and the plot. Marked `slow` (two
model services and two drill trainings, about a minute): `make test` and CI run it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.common.state import local_tracking_uri
from components.common.tracking import connect
from serving.experiments.report import EXPERIMENT
from tests.docs.as_typed import UserShell
from tests.docs.readme import claim

AB = claim("ab-experiment")
TIMEOUT_S = 400

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT_S + 120)]


def test_make_ab_ends_in_a_recorded_decision_for_the_better_variant(tmp_path: Path, checkout: Path) -> None:
    shell = UserShell(home=tmp_path / "home", plinth_home=tmp_path / "plinth-home", cwd=checkout)

    typed = shell.run(AB.block(), timeout=TIMEOUT_S)

    assert typed.returncode == 0, typed.tail()
    assert "DECISION: winner b" in typed.output, typed.tail()
    assert ", 0 met more than one variant; requests without a key 0;" in typed.output, typed.tail()
    client = connect(local_tracking_uri(shell.plinth_home))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert {run.data.params["variant.a.version"], run.data.params["variant.b.version"]} == {"1", "2"}
    assert run.data.tags["plinth.experiment.decision"] == "winner"
    assert run.data.tags["plinth.experiment.winner"] == "b"
    assert run.data.metrics["b.interval_low"] > 0 < run.data.metrics["b.effect"]
    assert run.data.metrics["b.samples"] >= 30
    assert run.data.metrics["b.samples_control"] >= 30
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "experiment")}
    assert artifacts == {"experiment/local-ab.json", "experiment/local-ab.png"}
