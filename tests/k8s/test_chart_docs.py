"""The chart README's parameter table is generated from values.yaml and must not go stale."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from k8s_tooling import CHART

from serving.gitops import chart_docs


def test_committed_readme_is_up_to_date() -> None:
    assert chart_docs.main(["--check"]) == 0


def test_every_value_is_documented_with_its_default() -> None:
    parameters = chart_docs.parse_parameters((CHART / "values.yaml").read_text())
    by_path = {parameter.path: parameter for parameter in parameters}
    assert by_path["httpRoute.weights.canary"].default == "0"
    assert "0-100" in by_path["httpRoute.weights.canary"].description
    assert by_path["image.repository"].default == '"ghcr.io/plinth-mlops/plinth-serving"'
    assert "rolloutController.analysis" in by_path


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    return copy


def test_a_changed_description_makes_the_readme_stale(chart_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = chart_copy / "values.yaml"
    values.write_text(values.read_text().replace("Service port (1-65535)", "Service port (1-65535, TCP)"))
    assert chart_docs.main(["--chart", str(chart_copy), "--check"]) == 1
    assert "is stale" in capsys.readouterr().err
    assert chart_docs.main(["--chart", str(chart_copy)]) == 0
    assert "Service port (1-65535, TCP)" in (chart_copy / "README.md").read_text()
    assert chart_docs.main(["--chart", str(chart_copy), "--check"]) == 0


def test_an_undocumented_value_is_an_error(chart_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = chart_copy / "values.yaml"
    values.write_text(values.read_text() + "\nextra:\n  knob: 3\n")
    assert chart_docs.main(["--chart", str(chart_copy), "--check"]) == 2
    assert "undocumented values" in capsys.readouterr().err
    with pytest.raises(chart_docs.ValuesDocError, match=r"extra\.knob"):
        chart_docs.parse_parameters(values.read_text())


def test_pipes_are_escaped_and_markers_are_required() -> None:
    table = chart_docs.render_table([chart_docs.Parameter("a", '"x|y"', "one | two")])
    assert '`"x\\|y"`' in table
    assert r"one \| two" in table
    with pytest.raises(chart_docs.ValuesDocError, match="exactly one"):
        chart_docs.update_readme("no markers here", table)
