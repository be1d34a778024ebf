"""`make bench-decisions` end to end on a few rollouts: both rules, every case, the A/B section, the file."""

from pathlib import Path

from serving.rollout.bench_decisions import CASES, Case, main, simulate
from serving.rollout.core.spec import load_spec

SPECS = Path(__file__).parents[1]


def test_the_anytime_valid_rule_spares_sound_canaries_the_threshold_rule_rolls_back():
    """40 identical canaries each (seeded): the threshold rule rolls back several, the default spec one at most."""
    threshold = simulate(load_spec(SPECS / "analysis-threshold.yaml"), Case("identical"), 40, seed=3)
    default = simulate(load_spec(SPECS / "analysis.yaml"), Case("identical"), 40, seed=3)
    assert sum(r.status == "rolled_back" for r in threshold) >= 4
    assert sum(r.status == "rolled_back" for r in default) <= 1
    assert sum(r.status == "promoted" for r in default) >= 39


def test_a_canary_two_points_worse_is_proven_worse_before_promotion():
    rollouts = simulate(load_spec(SPECS / "analysis.yaml"), Case("worse", error=0.02), 20, seed=4)
    assert {r.status for r in rollouts} == {"rolled_back"}
    assert {r.check for r in rollouts} == {"success-rate"}


def test_the_results_file_has_every_case_under_both_rules_and_the_ab_section(tmp_path):
    out = tmp_path / "results.md"
    assert main(["--runs", "3", "--out", str(out)]) == 0
    text = out.read_text()
    for case in CASES:
        assert f"| {case.name} | threshold |" in text
        assert f"| {case.name} | anytime-valid |" in text
    assert "| none (A/A) | anytime-valid |" in text
    assert "| +2 pt (10 -> 12 %) | z-test every look |" in text
