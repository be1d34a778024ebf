"""The "plinth serving" Grafana dashboard, one small function per panel, grouped in rows.

Built with grafana-foundation-sdk so panels, variables and their JSON shape come from Grafana's own schema
instead of hand-written JSON. Every panel reads the Prometheus datasource chosen in `$datasource`; the
`$namespace` and `$release` variables pick one release of the chart (queries.py says how), and
`$quality_window` the window live quality is averaged over.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Panel,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from serving.dashboards import queries

UID = "plinth-serving"
TITLE = "plinth serving"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
HEIGHT = 8
PanelFn = Callable[[], Builder[Panel]]


def target(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    """Return a range query of the panel's Prometheus datasource."""
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def graph(title: str, description: str, unit: str, *targets: prometheus.Dataquery) -> timeseries.Panel:
    """Return a half-width time series panel with its legend as a table below."""
    panel = timeseries.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
    panel = (
        panel.span(12)
        .height(HEIGHT)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    for query in targets:
        panel = panel.with_target(query)
    return panel


def request_rate() -> Builder[Panel]:
    """Traffic per track: requests per second, probes excluded."""
    return graph(
        "Requests per track",
        "Requests per second answered by each track.",
        "reqps",
        target(queries.request_rate(), "{{track}}"),
    )


def error_ratio() -> Builder[Panel]:
    """Errors per track: the share of 5xx answers, what the rollout's success-rate check judges."""
    return graph(
        "5xx share per track",
        "Share of requests answered 5xx (the rollout's success-rate check).",
        "percentunit",
        target(queries.error_ratio(), "{{track}}"),
    )


def rejected_rate() -> Builder[Panel]:
    """Client errors per track and reason: what the guard refused before the model saw it."""
    return graph(
        "Refused requests (4xx) by reason",
        "Requests refused before scoring, per second.",
        "reqps",
        target(queries.rejected_rate(), "{{track}} {{reason}}"),
    )


def latency() -> Builder[Panel]:
    """Latency quantiles per track from BentoML's request-duration histogram."""
    targets = [
        target(queries.latency_quantile(q), f"{{{{track}}}} p{q * 100:g}", chr(ord("A") + i))
        for i, q in enumerate(queries.LATENCY_QUANTILES)
    ]
    return graph("Latency quantiles per track", "Request duration quantiles (BentoML histogram).", "s", *targets)


def canary_weight() -> Builder[Panel]:
    """The canary's share of traffic, as the rollout controller last set it."""
    return (
        graph(
            "Canary weight",
            "Percent of requests routed to the canary.",
            "percent",
            target(queries.canary_weight(), "{{model_name}}"),
        )
        .min(0)
        .max(100)
    )


def check_results() -> Builder[Panel]:
    """Analysis check results over time: which check passed or failed at each interval."""
    return graph(
        "Rollout checks",
        "Analysis check results per interval, by check and result.",
        "short",
        target(queries.check_results(), "{{check}} {{result}}"),
    ).draw_style(common.GraphDrawStyle.BARS)


def decisions() -> Builder[Panel]:
    """Rollout outcomes: how many rollouts were promoted or rolled back."""
    query = target(queries.decisions(), "{{result}}").instant()
    return (
        stat.Panel()
        .title("Rollout decisions")
        .description("Rollouts promoted or rolled back, since the controller pods seen in the time range started.")
        .datasource(DATASOURCE)
        .with_target(query)
        .unit("short")
        .span(6)
        .height(HEIGHT)
    )


def check_interval() -> Builder[Panel]:
    """Each anytime-valid check's canary - stable difference inside its confidence sequence, interval by interval."""
    return graph(
        "Check evidence: canary - stable",
        "Latest difference and confidence-sequence bounds of each check with alpha and minEffect (a share: 0.01 "
        "is one point). A regression is proven, and the canary rolled back, once the interval leaves 0 behind.",
        "percentunit",
        target(queries.check_interval(), "{{check}} {{quantity}}"),
    )


def check_evidence() -> Builder[Panel]:
    """The latest evidence of each check as numbers: the bound crossed, interval, samples on each side, alpha."""
    query = target(queries.check_evidence(), "").instant().format(PromQueryFormat.TABLE)
    return (
        table.Panel()
        .title("Check evidence (latest)")
        .description(
            "Per check and quantity: difference, lower, upper (the interval), canary_samples, stable_samples, "
            "alpha, and regression (1: the bound was crossed, the rollout rolled back on it)."
        )
        .datasource(DATASOURCE)
        .with_target(query)
        .span(12)
        .height(HEIGHT)
    )


def served_versions() -> Builder[Panel]:
    """Which model version serves on each track, and whether its inputs are scored for drift."""
    query = target(queries.served_versions(), "").instant().format(PromQueryFormat.TABLE)
    return (
        table.Panel()
        .title("Served versions")
        .description("The model version of each track, from plinth_model_info.")
        .datasource(DATASOURCE)
        .with_target(query)
        .span(18)
        .height(HEIGHT)
    )


def class_share() -> Builder[Panel]:
    """Prediction distribution of classifiers: share of each predicted class, stable vs canary."""
    return graph(
        "Predicted class share",
        "Share of instances predicted per class, per track.",
        "percentunit",
        target(queries.class_share(), "{{track}} class {{class}}"),
    )


def mean_prediction() -> Builder[Panel]:
    """Mean prediction, stable vs canary: probability per class (classifiers) or value (regressors)."""
    return graph(
        "Mean prediction per track",
        "Classifiers: mean predicted probability per class; regressors: mean predicted value.",
        "short",
        target(queries.mean_probability(), "{{track}} P(class {{class}})", "A"),
        target(queries.mean_value(), "{{track}} value", "B"),
    )


def input_drift() -> Builder[Panel]:
    """Input drift per feature: the PSI the drift alert and the rollout's input-drift check read."""
    return graph(
        "Input drift (PSI) per feature",
        "Recent inputs vs the training reference; above 0.25 is a shift.",
        "short",
        target(queries.input_drift(), "{{track}} {{feature}}"),
    )


def unusual_inputs() -> Builder[Panel]:
    """Out-of-range, unseen and missing input values per feature."""
    kinds = (
        ("plinth_out_of_range_total", "out of range"),
        ("plinth_unseen_category_total", "unseen category"),
        ("plinth_missing_values_total", "missing"),
    )
    targets = [
        target(queries.unusual_inputs(metric), f"{{{{track}}}} {{{{feature}}}} {label}", chr(ord("A") + i))
        for i, (metric, label) in enumerate(kinds)
    ]
    return graph("Unusual input values", "Per second, per feature and track.", "short", *targets)


def live_accuracy() -> Builder[Panel]:
    """Live accuracy per version, from ground-truth labels joined to stored predictions (the live-quality exporter)."""
    return (
        graph(
            "Live accuracy per version",
            "Share of labelled predictions that were right (classifiers), over the live quality window.",
            "percentunit",
            target(queries.live_accuracy(), "v{{model_version}}"),
        )
        .min(0)
        .max(1)
    )


def live_error() -> Builder[Panel]:
    """Live loss per version: log loss (classifiers with probabilities) or MAE (regressors)."""
    return graph(
        "Live log loss / MAE per version",
        "Classifiers: mean log loss of labelled predictions; regressors: mean absolute error. Over the live "
        "quality window.",
        "short",
        target(queries.live_log_loss(), "v{{model_version}} log loss", "A"),
        target(queries.live_absolute_error(), "v{{model_version}} MAE", "B"),
    )


def labelled_rows() -> Builder[Panel]:
    """How many predictions get their label: the evidence behind the quality panels."""
    return graph(
        "Labelled rows per second",
        "Predictions joined to their ground truth per second, per version (whichever track answered them).",
        "short",
        target(queries.labelled_rate(), "v{{model_version}}"),
    )


def feedback_results() -> Builder[Panel]:
    """Feedback answers by result: accepted, or why not (malformed, unknown, duplicate, late, store_unavailable)."""
    return graph(
        "Feedback by result",
        "POST /feedback answers per second, by track and result.",
        "reqps",
        target(queries.feedback_rate(), "{{track}} {{result}}"),
    )


def triggers_received() -> Builder[Panel]:
    """Alerts the trigger receiver got, per trigger kind."""
    return graph(
        "Alerts received by trigger kind",
        "Alerts posted to the trigger receiver, counted since it started (unknown: not a trigger).",
        "short",
        target(queries.triggers_received(), "{{kind}}"),
    )


def trigger_decisions() -> Builder[Panel]:
    """What each trigger became: a started run, or the guard rail that held it back."""
    query = target(queries.trigger_decisions(), "{{kind}} {{decision}}").instant()
    return (
        stat.Panel()
        .title("Trigger decisions")
        .description(
            "Triggers started, coalesced, cooled down, ... by kind, since the receivers seen in the time range started."
        )
        .datasource(DATASOURCE)
        .with_target(query)
        .unit("short")
        .span(12)
        .height(HEIGHT)
    )


ROWS: tuple[tuple[str, tuple[PanelFn, ...]], ...] = (
    ("Traffic and errors", (request_rate, error_ratio, latency, rejected_rate)),
    ("Rollout", (canary_weight, check_results, decisions, served_versions, check_interval, check_evidence)),
    ("Predictions: stable vs canary", (class_share, mean_prediction)),
    ("Inputs", (input_drift, unusual_inputs)),
    ("Live quality", (live_accuracy, live_error, labelled_rows, feedback_results)),
    ("Triggers", (triggers_received, trigger_decisions)),
)


def variables() -> list[Builder]:
    """Return the datasource, namespace and release variables, each narrowing the next, and the quality window."""
    namespace = (
        dash.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query(queries.namespaces())
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    release = (
        dash.QueryVariable("release")
        .label("Release")
        .datasource(DATASOURCE)
        .query(queries.releases())
        .regex(queries.RELEASE_REGEX)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    default = queries.QUALITY_WINDOWS[1]
    window = (
        dash.IntervalVariable(queries.QUALITY_WINDOW.removeprefix("$"))
        .label("Live quality window")
        .values(",".join(queries.QUALITY_WINDOWS))
        .options([VariableOption(text=w, value=w, selected=w == default) for w in queries.QUALITY_WINDOWS])
        .current(VariableOption(text=default, value=default, selected=True))
    )
    source = dash.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    return [source, namespace, release, window]


def build() -> dash.Dashboard:
    """Return the dashboard builder, row by row."""
    board = (
        dash.Dashboard(TITLE)
        .uid(UID)
        .tags(["plinth", "mlops"])
        .readonly()
        .refresh("30s")
        .time("now-1h", "now")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .timezone("browser")
        .variables(variables())
    )
    for title, panels in ROWS:
        board = board.with_row(dash.Row(title))
        for panel in panels:
            board = board.with_panel(panel())
    return board


def render() -> str:
    """Return the dashboard as the JSON Grafana loads (stable key order, trailing newline).

    Panels and rows are numbered in layout order: Grafana keys panel state and links by id.
    """
    model = build().build()
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
