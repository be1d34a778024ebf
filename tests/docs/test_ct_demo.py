"""`make demo-ct`, typed as the root README writes it, in a bare shell on a fresh PLINTH_HOME.

The demo's own exit status says that a drift-triggered version was promoted with its trigger on it and that
the spurious alert was not acted on; this test reads the registry the demo left behind to check the same
things independently: the champion is the retrained version, its `plinth.trigger.*` tags name the drift, and
the `plinth-triggers` experiment recorded a started trigger and a cool-down. Marked `slow` (two pipeline
runs, a canary rollout, real Prometheus and Alertmanager): `make test` and CI run it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient

from components.common.state import local_tracking_uri
from tests.docs.as_typed import UserShell
from tests.docs.readme import claim

CT_DEMO = claim("ct-demo")
MODEL = "plinth-ct-demo"
DEMO_TIMEOUT_S = 1200

pytestmark = [pytest.mark.slow, pytest.mark.timeout(DEMO_TIMEOUT_S + 60)]


def test_make_demo_ct_promotes_a_drift_triggered_version_and_ignores_the_spurious_alert(
    tmp_path: Path, checkout: Path
) -> None:
    shell = UserShell(home=tmp_path / "home", plinth_home=tmp_path / "plinth-home", cwd=checkout)

    typed = shell.run(CT_DEMO.block(), timeout=DEMO_TIMEOUT_S)

    assert typed.returncode == 0, typed.tail()
    for line in ("drift alert firing", "trigger -> run started", "challenger registered", "rollout promoted"):
        assert re.search(rf"\+\s*\d+\.\ds  {re.escape(line)}", typed.output), f"summary lacks {line!r}"
    [run_dir] = (shell.plinth_home / "demo-ct").iterdir()
    uri = local_tracking_uri(run_dir)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "2", typed.tail()
    assert champion.tags["plinth.trigger.kind"] == "input_drift"
    assert champion.tags["plinth.trigger.decision"] == "start"
    assert all(value > 0.25 for value in json.loads(champion.tags["plinth.trigger.values"]).values())
    assert champion.tags["plinth.rollout.local.status"] == "promoted"

    experiment = client.get_experiment_by_name("plinth-triggers")
    assert experiment is not None
    decisions = [run.data.tags["plinth.trigger.decision"] for run in client.search_runs([experiment.experiment_id])]
    assert decisions.count("start") == 1, decisions
    assert "cool_down" in decisions, decisions
