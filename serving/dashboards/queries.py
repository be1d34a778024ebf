"""The PromQL of every dashboard panel, written against the metrics the services and the controller export.

Selectors name the release the way the chart's ServiceMonitors and PrometheusRule do: the series of the two
model Services `<release>-stable|canary`, of the controller Service `<release>-rollout` and of the trigger
receiver's Service `<release>-trigger-receiver`, in one namespace; `track` comes from the scrape configuration.
Every query aggregates to the labels its panel shows (`sum by`, `max by`), so a label added to a metric later
(say, whether a request was live or mirrored) splits no line.
"""

from __future__ import annotations

# Grafana template variables, substituted by Grafana (and by the tests, with the local stack's values).
NAMESPACE = "$namespace"
RELEASE = "$release"
RATE_INTERVAL = "$__rate_interval"
RANGE = "$__range"
# Live quality is averaged over a window of the dashboard's own: labels arrive late and sparsely, so a
# $__rate_interval of a minute would mostly hold no labelled row.
QUALITY_WINDOW = "$quality_window"
QUALITY_WINDOWS = ("15m", "1h", "6h", "1d")

SERVING = f'namespace="{NAMESPACE}", service=~"{RELEASE}-(stable|canary)"'
# Probes and scrapes are not traffic; every other endpoint is (as in the chart's PrometheusRule).
REQUESTS = f'{SERVING}, endpoint!~"/readyz|/livez|/metrics"'
CONTROLLER = f'namespace="{NAMESPACE}", service="{RELEASE}-rollout"'
TRIGGERS = f'namespace="{NAMESPACE}", service="{RELEASE}-trigger-receiver"'
# Live quality comes from the one exporter that reads the prediction store (`<release>-live-quality`), per
# model version: a canary's labelled rows are judged apart from the stable's, whichever pod took the label.
LIVE = f'namespace="{NAMESPACE}", service="{RELEASE}-live-quality"'
VERSIONS = "model_version"
LATENCY_QUANTILES = (0.5, 0.9, 0.99)
# The quantities of a check's evidence drawn as lines (the others, sample sizes and flags, go in a table).
INTERVAL = "difference|lower|upper"


def rate(metric: str, selector: str, by: str) -> str:
    """Return the per-second rate of a counter (or histogram part) summed by the labels `by`."""
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RATE_INTERVAL}]))"


def request_rate() -> str:
    """Requests per second per track."""
    return rate("bentoml_service_request_total", REQUESTS, "track")


def error_ratio() -> str:
    """Share of requests answered 5xx per track; a track that never failed reads 0, not "no data"."""
    errors = rate("bentoml_service_request_total", f'{REQUESTS}, http_response_code=~"5.."', "track")
    total = request_rate()
    return f"({errors} or {total} * 0) / {total}"


def rejected_rate() -> str:
    """Requests refused with a 4xx per second, by track and reason."""
    return rate("plinth_rejected_requests_total", SERVING, "track, reason")


def latency_quantile(quantile: float) -> str:
    """One request-duration quantile per track, from BentoML's built-in histogram."""
    buckets = rate("bentoml_service_request_duration_seconds_bucket", REQUESTS, "track, le")
    return f"histogram_quantile({quantile:g}, {buckets})"


def canary_weight() -> str:
    """The canary's traffic weight in percent, per model, as the controller last set it."""
    return f"max by (model_name) (plinth_rollout_weight{{{CONTROLLER}}})"


def check_results() -> str:
    """Analysis check results per interval, by check and result."""
    return f"sum by (check, result) (increase(plinth_rollout_checks_total{{{CONTROLLER}}}[{RATE_INTERVAL}]))"


def decisions() -> str:
    """Rollout outcomes (promoted, rolled back, ...) counted by the controllers seen in the time range.

    The counter's `result` series are born at 1 with the first such decision, which `increase` cannot see, so
    the panel shows each controller's running total instead of an increase that would miss it.
    """
    return f"sum by (result) (max_over_time(plinth_rollout_decisions_total{{{CONTROLLER}}}[{RANGE}]))"


def check_interval() -> str:
    """Each sequential check's latest canary - stable difference and the ends of its confidence sequence.

    The controller sets `plinth_rollout_check_evidence{check, quantity}` at every interval for the checks with
    `alpha` and `minEffect`; the bound is crossed when the interval leaves 0 behind (regression proven).
    """
    return f'max by (check, quantity) (plinth_rollout_check_evidence{{{CONTROLLER}, quantity=~"{INTERVAL}"}})'


def check_evidence() -> str:
    """Each sequential check's latest evidence, every quantity: interval, both sample sizes, alpha, regression."""
    return f"max by (check, quantity) (plinth_rollout_check_evidence{{{CONTROLLER}}})"


def served_versions() -> str:
    """Which model version each track serves, with its task and whether drift is scored."""
    return f"max by (track, model_name, model_version, task, drift) (plinth_model_info{{{SERVING}}})"


def class_share() -> str:
    """Share of predicted instances per class and track (classifiers)."""
    per_class = rate("plinth_predicted_class_total", SERVING, "track, class")
    per_track = rate("plinth_predicted_class_total", SERVING, "track")
    return f"{per_class} / ignoring (class) group_left {per_track}"


def mean_probability() -> str:
    """Mean predicted probability per class and track (classifiers with probabilities)."""
    total = rate("plinth_prediction_probability_sum", SERVING, "track, class")
    count = rate("plinth_prediction_probability_count", SERVING, "track, class")
    return f"{total} / {count}"


def mean_value() -> str:
    """Mean predicted value per track (regressors)."""
    total = rate("plinth_prediction_value_sum", SERVING, "track")
    count = rate("plinth_prediction_value_count", SERVING, "track")
    return f"{total} / {count}"


def input_drift() -> str:
    """Population stability index of the recent inputs vs the training reference, per feature and track."""
    return f"max by (track, feature) (plinth_input_drift_psi{{{SERVING}}})"


def unusual_inputs(metric: str) -> str:
    """Per-second count of one kind of unusual input value, per feature and track."""
    return rate(metric, SERVING, "track, feature")


def live_mean(summary: str) -> str:
    """Mean of a live-quality Summary per version over the quality window (its `_sum / _count`)."""
    total = f"sum by ({VERSIONS}) (rate({summary}_sum{{{LIVE}}}[{QUALITY_WINDOW}]))"
    count = f"sum by ({VERSIONS}) (rate({summary}_count{{{LIVE}}}[{QUALITY_WINDOW}]))"
    return f"{total} / {count}"


def live_accuracy() -> str:
    """Share of labelled rows the model classified right (classifiers: `plinth_live_correct` observes 1 or 0)."""
    return live_mean("plinth_live_correct")


def live_log_loss() -> str:
    """Mean log loss of the labelled rows (classifiers with probabilities)."""
    return live_mean("plinth_live_log_loss")


def live_absolute_error() -> str:
    """Mean absolute error of the labelled rows (regressors)."""
    return live_mean("plinth_live_absolute_error")


def labelled_rate() -> str:
    """Labelled rows per second per version, whatever the task (each labelled row is counted once)."""
    labelled = f'__name__=~"plinth_live_(correct|absolute_error)_count", {LIVE}'
    return f"sum by ({VERSIONS}) (rate({{{labelled}}}[{RATE_INTERVAL}]))"


def feedback_rate() -> str:
    """Feedback answers per second, by track and result (accepted, or why it was refused)."""
    return rate("plinth_feedback_total", SERVING, "track, result")


def triggers_received() -> str:
    """Alerts the trigger receiver got, by trigger kind, counted since the receiver started.

    A running count rather than a rate: alerts are rare, and a kind's series is born at 1 with its first alert,
    which `rate` and `increase` cannot see.
    """
    return f"sum by (kind) (plinth_trigger_received_total{{{TRIGGERS}}})"


def trigger_decisions() -> str:
    """Triggers decided (start, coalesce, cool_down, ...) per kind, by the receivers seen in the time range."""
    return f"sum by (kind, decision) (max_over_time(plinth_trigger_decisions_total{{{TRIGGERS}}}[{RANGE}]))"


def namespaces() -> str:
    """Grafana variable query: the namespaces that run a plinth model service."""
    return "label_values(plinth_model_info, namespace)"


def releases() -> str:
    """Grafana variable query: the model Services of the namespace (the release is cut out by a regex)."""
    return f'label_values(plinth_model_info{{namespace="{NAMESPACE}"}}, service)'


# Cuts `<release>` out of a `<release>-stable` or `<release>-canary` Service name.
RELEASE_REGEX = "/^(.+)-(?:stable|canary)$/"
