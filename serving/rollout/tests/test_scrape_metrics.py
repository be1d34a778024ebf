"""The scrape source's live quality, from the /metrics text of two stand-in service processes."""

import math

from serving.rollout.core.observe import LiveQuality, Observation
from serving.rollout.edges.scrape_metrics import delta, parse_snapshot, summarise, with_live_quality
from serving.rollout.tests.live_exporter import LiveExporter


def observed(stable: LiveExporter, canary: LiveExporter, before: list[str]) -> Observation:
    """Return what the scrape source reports for the pages now against the pages `before`."""
    pages = []
    for exporter, earlier in zip((stable, canary), before, strict=True):
        current = parse_snapshot(exporter.text())
        increase = delta(current, parse_snapshot(earlier))
        pages.append((summarise(current, increase), increase))
    return with_live_quality(pages[0], pages[1])


def sums(live: LiveQuality) -> tuple[float, float, float]:
    return live.labelled, live.correct, live.absolute_error


def test_labels_are_counted_by_version_whichever_process_exported_them():
    stable, canary = LiveExporter("1", "binary", ["1"]), LiveExporter("2", "binary", ["1", "2"])
    stable.classified("1", right=5, wrong=5)
    before = [stable.text(), canary.text()]
    stable.classified("1", right=9, wrong=1)
    # Feedback for the stable's answers that reached the canary's process: exported there as version 1.
    canary.classified("1", right=27, wrong=3)
    canary.classified("2", right=12, wrong=8)
    observation = observed(stable, canary, before)
    assert sums(observation.stable.live)[:2] == (40.0, 36.0)
    assert sums(observation.canary.live)[:2] == (20.0, 12.0)
    assert math.isnan(observation.canary.live.absolute_error)
    assert observation.stable.live.accuracy == 0.9


def test_regression_errors_and_no_feedback():
    stable, canary = LiveExporter("4", "regression", ["4"]), LiveExporter("5", "regression", ["5"])
    before = [stable.text(), canary.text()]
    stable.regressed("4", [1.0, 3.0])
    observation = observed(stable, canary, before)
    assert observation.stable.live.labelled == 2.0
    assert observation.stable.live.mae == 2.0
    assert observation.canary.live.labelled == 0.0
    assert math.isnan(observation.canary.live.mae)
    silent = LiveExporter("6", "regression", [])
    nothing = observed(silent, silent, [silent.text(), silent.text()])
    assert all(math.isnan(value) for value in sums(nothing.stable.live))
