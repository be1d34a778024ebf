"""The CT loop's parts that need no training run: its drift rule is the chart's, and it refuses to start empty."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from serving.embedded import ct
from serving.embedded.alerting import DRIFT_ALERT, DriftRule
from tests.k8s.k8s_tooling import named, render


@pytest.mark.skipif(shutil.which("helm") is None and not Path(".tools/bin/helm").exists(), reason="needs helm")
def test_the_local_drift_rule_is_the_charts_with_a_shorter_hold() -> None:
    chart_rules = named(render("default"), "PrometheusRule", "release-plinth-serving")["spec"]["groups"]
    [chart] = [rule for group in chart_rules for rule in group["rules"] if rule.get("alert") == DRIFT_ALERT]
    [local] = DriftRule().groups("release-model")["groups"][0]["rules"]

    def without_selector(expr: str) -> str:
        return re.sub(r"\{[^}]*\}", "", " ".join(expr.split()))

    assert without_selector(local["expr"]) == without_selector(chart["expr"])
    # `namespace` is there for the operator's AlertmanagerConfig routing, which has no local counterpart.
    assert set(local["labels"]) == set(chart["labels"]) - {"namespace"}
    assert local["annotations"]["value"] == chart["annotations"]["value"] == "{{ $value }}"
    assert local["for"] == "10s"  # the chart's is minutes; the demo must finish in minutes


@pytest.mark.integration
def test_make_ct_without_a_champion_says_to_train_first(tmp_path: Path, monkeypatch, capsys) -> None:
    if shutil.which("prometheus-alertmanager") is None:
        pytest.skip("needs prometheus-alertmanager (.ci/install-system-tools.sh)")
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path))
    assert ct.main(["--model-name", "never-trained"]) == 1
    error = capsys.readouterr().err
    assert "no champion version of never-trained" in error
    assert "run make train first" in error


def test_a_bad_rails_file_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    rails = tmp_path / "rails.yaml"
    rails.write_text("coolDown: soon\n")
    assert ct.main(["--rails", str(rails)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "'soon'" in error
