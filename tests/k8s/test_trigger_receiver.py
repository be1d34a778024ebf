"""The retraining trigger receiver in the chart: what it runs, what it may reach, and the alerts routed to it.

The receiver (pipelines/triggers/receive.py) is off by default; the value set `trigger-receiver` turns it on
with its own registry login and the live-quality alert, so the chart-wide tests (lint, schemas, Pod Security,
NetworkPolicy peers, checkov) cover it too. Here: its command line, no API credentials, its NetworkPolicy
peers, the refusals at render time, the AlertmanagerConfig route, the rules under promtool (and what the
receiver makes of the alerts they raise), and the real receiver process run with the chart's command line and
the guard rails it renders, against a stand-in for the KFP API's health check.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from k8s_tooling import (
    NAMESPACE,
    assert_promtool_alerts,
    env_of,
    load_documents,
    named,
    pod_specs,
    render,
    render_with,
    restricted_violations,
    validate_object,
)
from kfp.client import KF_PIPELINES_SA_TOKEN_PATH
from test_checkov import scan
from test_network_policy import open_peers

from pipelines.images import COMPONENTS, DEFAULT_REGISTRY
from pipelines.triggers.alerts import ALERT_KINDS, FIRING, Alert, to_trigger
from pipelines.triggers.policy import Guardrails
from serving.embedded.processes import ManagedProcess, free_port

RECEIVER = "release-plinth-serving-trigger-receiver"
KFP_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
TOKEN_SECRET = "plinth-trigger-token"
ENABLED = [
    "--set",
    "triggerReceiver.enabled=true",
    "--set",
    f"triggerReceiver.kfpHost={KFP_HOST}",
    "--set",
    f"triggerReceiver.tokenSecret.name={TOKEN_SECRET}",
]
LIVE_QUALITY = [
    "--set-json",
    "prometheusRule.liveQuality.minAccuracy=0.9",
    "--set-json",
    "prometheusRule.liveQuality.maxMae=3.5",
]
SERVING_SELECTOR = 'namespace="plinth", service="release-plinth-serving-stable"'
# Live quality is exported by the one exporter that reads the prediction store, not by the serving pods.
LIVE_SELECTOR = 'namespace="plinth", service="release-plinth-serving-live-quality"'


def rendered(*args: str) -> list[dict[str, Any]]:
    result = render_with(*ENABLED, *args)
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


def receiver_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["metadata"]["name"] == RECEIVER]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec = named(objects, "Deployment", RECEIVER)["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    return only


def flags(objects: list[dict[str, Any]]) -> dict[str, str]:
    command = container(objects)["command"]
    assert command[:3] == ["python", "-m", "pipelines.triggers.receive"]
    return dict(zip(command[3::2], command[4::2], strict=True))


def rules_of(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rule = named(objects, "PrometheusRule", "release-plinth-serving")
    return [entry for group in rule["spec"]["groups"] for entry in group["rules"]]


def test_off_by_default_so_existing_installs_are_unchanged() -> None:
    objects = render("default")
    assert [obj for obj in objects if "trigger-receiver" in obj["metadata"]["name"]] == []
    assert "AlertmanagerConfig" not in {obj["kind"] for obj in objects}
    assert "PlinthLiveQualityLow" not in [entry["alert"] for entry in rules_of(objects)]


def test_the_receiver_runs_the_receive_module_against_kfp_with_its_rails() -> None:
    objects = render("trigger-receiver")
    assert flags(objects) == {
        "--host": "0.0.0.0",
        "--port": "9095",
        "--tracking-uri": "$(MLFLOW_TRACKING_URI)",
        "--model-name": "plinth-classifier",
        "--kfp-host": KFP_HOST,
        "--rails": "/etc/plinth/rails.yaml",
        "--rate": "1",
        "--burst": "60",
        "--timeout": "10",
        "--token-file": "/etc/plinth/token/token",
    }
    deployment = named(objects, "Deployment", RECEIVER)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    receiver = container(objects)
    # The components image `make images` builds (pipelines/images.py), tagged with the project version.
    assert receiver["image"] == COMPONENTS.reference(DEFAULT_REGISTRY)
    assert receiver["ports"] == [{"name": "webhook", "containerPort": 9095, "protocol": "TCP"}]
    env = env_of(receiver)
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.plinth-platform.svc.cluster.local:5000"
    for variable in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-triggers"
    for probe in ("livenessProbe", "readinessProbe"):
        assert receiver[probe]["httpGet"] == {"path": "/healthz", "port": "webhook"}
    mounts = {mount["mountPath"]: mount for mount in receiver["volumeMounts"]}
    assert mounts["/etc/plinth/rails.yaml"]["subPath"] == "rails.yaml"
    assert receiver["securityContext"]["readOnlyRootFilesystem"] is True
    [(name, spec)] = [(name, spec) for name, spec in pod_specs(objects) if name == RECEIVER]
    assert restricted_violations(name, spec) == []
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes[mounts["/tmp"]["name"]]["emptyDir"]["sizeLimit"] == "64Mi"
    assert volumes["rails"]["configMap"]["name"] == RECEIVER
    # The token Alertmanager presents, from the Secret the AlertmanagerConfig reads, as a file only this pod reads.
    token = volumes[mounts["/etc/plinth/token"]["name"]]["secret"]
    assert token == {"secretName": TOKEN_SECRET, "defaultMode": 0o440, "items": [{"key": "token", "path": "token"}]}
    assert mounts["/etc/plinth/token"]["readOnly"] is True
    assert not [name for name in env_of(receiver) if "TOKEN" in name]


def test_the_uri_secret_and_a_pinned_digest_reach_the_receiver() -> None:
    digest = "sha256:" + "c0ffee00" * 8
    objects = rendered("--set", "mlflow.uriSecret.name=mlflow-uri", "--set", f"triggerReceiver.image.digest={digest}")
    receiver = container(objects)
    assert receiver["image"] == f"{COMPONENTS.reference(DEFAULT_REGISTRY)}@{digest}"
    assert env_of(receiver)["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-uri", "key": "uri"}
    refused = render_with(*ENABLED, "--set", "triggerReceiver.image.tag=latest")
    assert refused.returncode != 0
    assert "values don't meet the specifications of the schema" in refused.stderr


def test_it_holds_no_cluster_credentials() -> None:
    objects = render("trigger-receiver")
    account = named(objects, "ServiceAccount", RECEIVER)
    assert account["automountServiceAccountToken"] is False
    spec = named(objects, "Deployment", RECEIVER)["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == RECEIVER
    assert spec["automountServiceAccountToken"] is False
    assert not [volume for volume in spec["volumes"] if "projected" in volume]
    bound = [
        binding["metadata"]["name"]
        for binding in objects
        if binding["kind"] in {"RoleBinding", "ClusterRoleBinding"}
        and any(subject.get("name") == RECEIVER for subject in binding["subjects"])
    ]
    assert bound == []
    assert [obj for obj in receiver_objects(objects) if obj["kind"] in {"Role", "ClusterRole"}] == []


def test_multi_user_kfp_gets_a_token_for_its_audience_where_kfp_client_reads_it() -> None:
    objects = rendered("--set", "triggerReceiver.kfpTokenAudience=pipelines.kubeflow.org")
    spec = named(objects, "Deployment", RECEIVER)["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    mount = next(mount for mount in container(objects)["volumeMounts"] if mount["name"] == "kfp-token")
    volume = next(volume for volume in spec["volumes"] if volume["name"] == "kfp-token")
    (source,) = volume["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == "pipelines.kubeflow.org"
    assert f"{mount['mountPath']}/{token['path']}" == KF_PIPELINES_SA_TOKEN_PATH


def test_only_alertmanager_and_prometheus_reach_it_and_it_calls_only_dns_mlflow_and_kfp() -> None:
    objects = render("trigger-receiver")
    policy = named(objects, "NetworkPolicy", RECEIVER)
    assert open_peers(policy) == []
    pod_labels = named(objects, "Deployment", RECEIVER)["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "webhook", "protocol": "TCP"}]
    assert ingress["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}},
        },
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        },
    ]
    dns, mlflow, kfp = policy["spec"]["egress"]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert mlflow["to"][0]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "mlflow"}}
    assert mlflow["ports"] == [{"port": 5000, "protocol": "TCP"}]
    assert kfp == {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}},
                "podSelector": {"matchLabels": {"app": "ml-pipeline"}},
            }
        ],
        "ports": [{"port": 8888, "protocol": "TCP"}],
    }
    moved = named(
        rendered(
            "--set", "triggerReceiver.alertmanagerNamespace=observability", "--set", "triggerReceiver.kfpNamespace=kfp"
        ),
        "NetworkPolicy",
        RECEIVER,
    )
    assert moved["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "observability"
    }
    assert moved["spec"]["egress"][2]["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kfp"
    }


def test_every_object_validates_and_checkov_finds_nothing(tmp_path: Path) -> None:
    objects = render("trigger-receiver")
    mine = receiver_objects(objects)
    assert sorted(obj["kind"] for obj in mine) == [
        "AlertmanagerConfig",
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "Service",
        "ServiceAccount",
    ]
    for obj in objects:
        validate_object(obj)
    assert {obj["metadata"]["namespace"] for obj in mine} == {NAMESPACE}
    (tmp_path / "receiver.yaml").write_text(yaml.safe_dump_all(mine))
    report = scan(tmp_path)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 20
    assert [f"{check['check_id']} {check['resource']}" for check in report["results"]["failed_checks"]] == []


def test_a_missing_kfp_host_fails_the_render_with_one_message() -> None:
    result = render_with("--set", "triggerReceiver.enabled=true")
    assert result.returncode != 0
    assert "triggerReceiver.kfpHost is required with the trigger receiver" in result.stderr
    assert "http://ml-pipeline.kubeflow.svc.cluster.local:8888" in result.stderr


def test_a_receiver_without_a_token_secret_is_refused_at_render_time() -> None:
    result = render_with("--set", "triggerReceiver.enabled=true", "--set", f"triggerReceiver.kfpHost={KFP_HOST}")
    assert result.returncode != 0
    assert "triggerReceiver.tokenSecret.name is required with the trigger receiver" in result.stderr
    empty_key = render_with(*ENABLED, "--set", "triggerReceiver.tokenSecret.key=")
    assert empty_key.returncode != 0
    assert "values don't meet the specifications of the schema" in empty_key.stderr


@pytest.mark.parametrize(
    "receiver_login",
    [[], ["--set", "triggerReceiver.mlflowCredentialsSecret.name=mlflow-reader"]],
    ids=["none", "shared"],
)
def test_the_serving_pods_read_only_login_is_refused(receiver_login: list[str]) -> None:
    result = render_with(*ENABLED, "--set", "mlflow.credentialsSecret.name=mlflow-reader", *receiver_login)
    assert result.returncode != 0
    assert "triggerReceiver.mlflowCredentialsSecret.name is required" in result.stderr
    assert "must name another Secret" in result.stderr
    # Without a serving login (an open MLflow in a dev cluster) the receiver needs none either.
    assert env_of(container(rendered())).keys() == {"MLFLOW_TRACKING_URI", "HOME"}


def test_alertmanager_posts_the_retraining_alerts_of_this_model_to_the_receiver() -> None:
    objects = render("trigger-receiver")
    config = named(objects, "AlertmanagerConfig", RECEIVER)
    route = config["spec"]["route"]
    matchers = {matcher["name"]: matcher for matcher in route["matchers"]}
    assert matchers["model"] == {"name": "model", "matchType": "=", "value": "plinth-classifier"}
    assert matchers["alertname"]["matchType"] == "=~"
    routed = re.compile(matchers["alertname"]["value"])
    for name in [*ALERT_KINDS, "PlinthLiveQualityLow"]:
        assert routed.fullmatch(name), name
    assert not routed.fullmatch("PlinthHighErrorRate")
    (receiver,) = config["spec"]["receivers"]
    assert route["receiver"] == receiver["name"]
    service = named(objects, "Service", RECEIVER)
    (port,) = service["spec"]["ports"]
    assert receiver["webhookConfigs"] == [
        {
            "url": f"http://{RECEIVER}.{NAMESPACE}.svc:{port['port']}/alerts",
            "sendResolved": True,
            # The token the receiver demands (--token-file): the same Secret and key as its mounted file.
            "httpConfig": {"authorization": {"type": "Bearer", "credentials": {"name": TOKEN_SECRET, "key": "token"}}},
        }
    ]
    # The operator matches the route on `namespace=<its namespace>` only: the routed alerts carry that label.
    for entry in rules_of(objects):
        if routed.fullmatch(entry["alert"]):
            assert entry["labels"]["namespace"] == config["metadata"]["namespace"], entry["alert"]
            # The receiver ignores an alert that does not name its model in the `model` label.
            assert entry["labels"]["model"] == flags(objects)["--model-name"], entry["alert"]
    off = rendered("--set", "triggerReceiver.alertmanagerConfig.enabled=false")
    assert "AlertmanagerConfig" not in {obj["kind"] for obj in off}
    assert named(off, "Deployment", RECEIVER)


def test_prometheus_scrapes_the_receiver_once() -> None:
    objects = render("trigger-receiver")
    monitor = named(objects, "ServiceMonitor", "release-plinth-serving")
    selector = monitor["spec"]["selector"]["matchLabels"]
    service = named(objects, "Service", RECEIVER)
    assert selector.items() <= service["metadata"]["labels"].items()
    port_names = {port["name"] for port in service["spec"]["ports"]}
    scraping = [endpoint for endpoint in monitor["spec"]["endpoints"] if endpoint["port"] in port_names]
    assert scraping == [{"port": "webhook", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}]


def test_the_rules_carry_the_value_literal_and_pass_promtool(tmp_path: Path) -> None:
    objects = rendered(*LIVE_QUALITY)
    rules = rules_of(objects)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in rules:
        by_name.setdefault(entry["alert"], []).append(entry)
    (drift,) = by_name["PlinthInputDrift"]
    assert drift["annotations"]["value"] == "{{ $value }}"
    accuracy, mae = by_name["PlinthLiveQualityLow"]
    for entry, metric in ((accuracy, "accuracy"), (mae, "mae")):
        labels = {"severity": "warning", "model": "plinth-classifier", "namespace": NAMESPACE, "metric": metric}
        assert entry["labels"] == labels
        assert entry["annotations"]["value"] == "{{ $value }}"
        assert "and on (model_version)" in entry["expr"]
        assert ">= 50" in entry["expr"]
    assert "plinth_live_correct_sum" in accuracy["expr"]
    assert "< 0.9" in accuracy["expr"]
    assert "plinth_live_absolute_error_sum" in mae["expr"]
    assert "> 3.5" in mae["expr"]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`): PromQL syntax not checked")
    rule = named(objects, "PrometheusRule", "release-plinth-serving")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    assert len(rules) == 9  # the serving alerts, both live-quality ones and the two rollout alerts


def live_series(metric: str, version: str, rows_per_minute: float, mean: float) -> list[dict[str, str]]:
    """Input series for `promtool test rules`: a Summary's _sum and _count over 100 minutes."""
    labels = f'{LIVE_SELECTOR}, model_name="plinth-classifier", model_version="{version}"'
    return [
        {"series": f"{metric}_sum{{{labels}}}", "values": f"0+{rows_per_minute * mean:g}x100"},
        {"series": f"{metric}_count{{{labels}}}", "values": f"0+{rows_per_minute:g}x100"},
    ]


def test_live_quality_fires_per_version_only_on_enough_labelled_rows(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`): the alert rules cannot be evaluated")
    rule = named(rendered(*LIVE_QUALITY), "PrometheusRule", "release-plinth-serving")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    inputs = [
        # Version 3: 60 labelled rows an hour, accuracy 0.5 and MAE 4: both alerts fire.
        *live_series("plinth_live_correct", "3", 1, 0.5),
        *live_series("plinth_live_absolute_error", "3", 1, 4),
        # Version 4: as bad, but 30 rows an hour, under minLabelledRows (50): noise, no alert.
        *live_series("plinth_live_correct", "4", 0.5, 0.5),
        *live_series("plinth_live_absolute_error", "4", 0.5, 4),
        # Version 5: plenty of rows, accuracy 0.95 and MAE 1: healthy.
        *live_series("plinth_live_correct", "5", 2, 0.95),
        *live_series("plinth_live_absolute_error", "5", 2, 1),
    ]
    labels = {"severity": "warning", "model": "plinth-classifier", "namespace": NAMESPACE, "model_version": "3"}
    expected = [
        {
            "exp_labels": {**labels, "metric": "accuracy"},
            "exp_annotations": {
                "summary": "Live accuracy of plinth-classifier version 3 below 0.9 over 1h (ground truth)",
                "value": "0.5",
            },
        },
        {
            "exp_labels": {**labels, "metric": "mae"},
            "exp_annotations": {
                "summary": "Live mean absolute error of plinth-classifier version 3 above 3.5 over 1h (ground truth)",
                "value": "4",
            },
        },
    ]
    assert_promtool_alerts(promtool, tmp_path, inputs, "90m", {"PlinthLiveQualityLow": expected})


def test_the_receiver_names_each_live_quality_value_by_the_rules_metric_label() -> None:
    rules = [entry for entry in rules_of(rendered(*LIVE_QUALITY)) if entry["alert"] == "PlinthLiveQualityLow"]
    for entry, value in zip(rules, (0.5, 4.0), strict=True):
        # What Alertmanager posts once the rule fires for version 3: the rule's labels, the series' model_version.
        labels = {"alertname": entry["alert"], **entry["labels"], "model_version": "3"}
        alert = Alert(FIRING, entry["alert"], labels, {"value": str(value)}, datetime.now(UTC), "f")
        trigger = to_trigger([alert], ALERT_KINDS[entry["alert"]])
        assert trigger.kind == "performance_decay"
        assert trigger.values == {entry["labels"]["metric"]: value}


def rails_file(objects: list[dict[str, Any]], tmp_path: Path) -> Path:
    path = tmp_path / "rails.yaml"
    path.write_text(named(objects, "ConfigMap", RECEIVER)["data"]["rails.yaml"])
    return path


def test_the_rendered_rails_are_what_guardrails_load(tmp_path: Path) -> None:
    assert Guardrails.load(rails_file(render("trigger-receiver"), tmp_path)) == Guardrails()
    custom = rendered("--set", "triggerReceiver.rails.coolDown=90s", "--set", "triggerReceiver.rails.maxRunsPerDay=1")
    loaded = Guardrails.load(rails_file(custom, tmp_path))
    assert (loaded.cool_down, loaded.max_runs_per_day) == (timedelta(seconds=90), 1)
    deployment = named(custom, "Deployment", RECEIVER)
    before = named(render("trigger-receiver"), "Deployment", RECEIVER)
    key = "checksum/rails"
    assert (
        deployment["spec"]["template"]["metadata"]["annotations"][key]
        != (before["spec"]["template"]["metadata"]["annotations"][key])
    ), "changed rails restart the receiver"
    refused = render_with(*ENABLED, "--set", "triggerReceiver.rails.coolDown=later")
    assert refused.returncode != 0
    assert "values don't meet the specifications of the schema" in refused.stderr


class FakeKfp(BaseHTTPRequestHandler):
    """The Kubeflow Pipelines API as far as `kfp.Client(host=…)` reads it when built: its health check."""

    def do_GET(self) -> None:
        status, body = (200, b"{}") if self.path.startswith("/apis/v2beta1/healthz") else (404, b"{}")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def kfp_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.integration
def test_the_real_receiver_runs_the_charts_command_line_with_the_rendered_rails(tmp_path: Path, kfp_host: str) -> None:
    objects = render("trigger-receiver")
    port = free_port()
    # The chart's command line as the kubelet runs it, with what differs on this machine: the address, the
    # registry the kubelet expands $(MLFLOW_TRACKING_URI) to, the KFP endpoint, and where the rails file lies.
    local = {
        "--host": "127.0.0.1",
        "--port": str(port),
        "--tracking-uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--kfp-host": kfp_host,
        "--rails": str(rails_file(objects, tmp_path)),
        "--token-file": str(tmp_path / "token"),
    }
    chart_flags = flags(objects)
    assert local.keys() < chart_flags.keys()
    token = "the-token-of-this-test-0123456789"
    (tmp_path / "token").write_text(token + "\n")  # as the kubelet mounts the Secret's key
    argv = [sys.executable, *container(objects)["command"][1:3]]
    argv += [part for flag, value in {**chart_flags, **local}.items() for part in (flag, value)]
    server = ManagedProcess("receiver", argv, tmp_path / "receiver.log", ready_url=f"http://127.0.0.1:{port}/healthz")
    try:
        server.start().wait_ready(60)
        resolved = {
            "status": "resolved",
            "labels": {"alertname": "PlinthInputDrift", "feature": "x", "model": chart_flags["--model-name"]},
            "annotations": {"value": "0.1"},
            "startsAt": "2026-11-23T12:00:00Z",
        }
        notification = {"version": "4", "alerts": [resolved]}
        url = f"http://127.0.0.1:{port}/alerts"
        assert httpx.post(url, json=notification, timeout=60).status_code == 401
        answer = httpx.post(url, json=notification, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert [outcome["decision"] for outcome in answer.json()["outcomes"]] == ["ignore"]
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert 'plinth_trigger_decisions_total{decision="ignore",kind="input_drift"} 1.0' in metrics.text
    finally:
        server.stop()
    assert f"trigger receiver for {chart_flags['--model-name']}" in server.log_tail()
