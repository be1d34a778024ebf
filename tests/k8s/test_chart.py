"""The chart under the real Helm CLI: lint, render for several value sets, validate every object."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess

import pytest
import yaml
from k8s_tooling import (
    CHART,
    CLUSTER_SCOPED,
    CLUSTER_VALUES,
    CRD_SCHEMAS,
    EXAMPLE_PUBLIC_KEY,
    NAMESPACE,
    VALUE_SETS,
    assert_promtool_alerts,
    env_of,
    kinds,
    load_documents,
    named,
    pod_specs,
    render,
    render_with,
    run,
    tool,
    validate_object,
)
from kubernetes_validate.utils import SchemaNotFoundError

CRD_KINDS = {kind for _, kind in CRD_SCHEMAS}


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict(value_set: str) -> None:
    args = [*CLUSTER_VALUES, *VALUE_SETS[value_set]]
    result = run([tool("helm"), "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *args])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_rendered_object_matches_its_schema(value_set: str) -> None:
    objects = render(value_set)
    assert len(objects) >= 8
    for obj in objects:
        validate_object(obj)
        expected = None if obj["kind"] in CLUSTER_SCOPED else NAMESPACE
        assert obj["metadata"].get("namespace") == expected, obj["metadata"]["name"]
        assert len(obj["metadata"]["name"]) <= 63


def test_validation_rejects_a_broken_object_and_an_unknown_kind() -> None:
    deployment = named(render("default"), "Deployment", "release-plinth-serving-stable")
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(Exception, match="two"):
        validate_object(deployment)
    route = named(render("default"), "HTTPRoute", "release-plinth-serving")
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    with pytest.raises(Exception, match="-1"):
        validate_object(route)
    with pytest.raises(SchemaNotFoundError):
        validate_object({"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "x"}})


def test_default_renders_the_whole_stack() -> None:
    assert sorted(set(kinds(render("default")))) == [
        "ConfigMap",
        "Deployment",
        "HTTPRoute",
        "NetworkPolicy",
        "Pod",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]


def test_crds_off_renders_no_custom_resources_and_no_controller() -> None:
    objects = render("crds-off")
    assert CRD_KINDS.isdisjoint(kinds(objects))
    names = [obj["metadata"]["name"] for obj in objects]
    assert "release-plinth-serving-rollout" not in names
    assert "release-plinth-serving-canary" in names


def test_canary_off_routes_everything_to_stable() -> None:
    objects = render("canary-off")
    assert not [obj for obj in objects if obj["metadata"]["name"].endswith("-canary")]
    assert "Role" not in kinds(objects)
    rules = named(objects, "HTTPRoute", "release-plinth-serving")["spec"]["rules"]
    assert len(rules) == 2, "the prediction API and the Open Inference Protocol"
    for rule in rules:
        assert rule["backendRefs"] == [{"name": "release-plinth-serving-stable", "port": 80, "weight": 100}]


def test_route_weights_come_from_values() -> None:
    route = named(render("secrets-and-pins"), "HTTPRoute", "release-plinth-serving")
    for rule in route["spec"]["rules"]:
        weights = {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}
        assert weights == {"release-plinth-serving-stable": 90, "release-plinth-serving-canary": 10}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "image.tag=latest"], "/image/tag"),
        (["--set", "httpRoute.weights.stable=90"], "must be 100"),
        (["--set", "stable.replicas=0"], "/stable/replicas"),
        (["--set", "model.version=v7"], "/model/version"),
        (["--set", "model.canary.version=7"], "additional properties 'version' not allowed"),
        (["--set", "mlflow.trackingUri=http://user:secret@mlflow:5000"], "/mlflow/trackingUri"),
        (["--set", "unknownKey=1"], "unknownKey"),
        (["--set", "httpRoute.paths={/}"], "/httpRoute/paths/0"),
        (["--set", "httpRoute.paths={predict}"], "/httpRoute/paths/0"),
        (["--set", "httpRoute.openInference=yes"], "/httpRoute/openInference"),
        (["--set", "model.name=churn model"], 'model.name "churn model" cannot be published'),
        (["--set", "networkPolicy.apiServerCidrs={0.0.0.0/0}"], "/networkPolicy/apiServerCidrs/0"),
        (["--set", "networkPolicy.apiServerCidrs={::/0}"], "/networkPolicy/apiServerCidrs/0"),
    ],
)
def test_bad_values_are_refused(args: list[str], message: str) -> None:
    result = render_with(*args)
    assert result.returncode != 0
    assert message in result.stderr


def test_without_the_controller_the_pins_and_mlflow_secrets_reach_the_containers() -> None:
    objects = render("secrets-and-pins")
    stable = env_of(
        named(objects, "Deployment", "release-plinth-serving-stable")["spec"]["template"]["spec"]["containers"][0]
    )
    canary_deployment = named(objects, "Deployment", "release-plinth-serving-canary")
    canary = env_of(canary_deployment["spec"]["template"]["spec"]["containers"][0])
    assert stable["PLINTH_MODEL_NAME"]["value"] == "plinth-classifier"
    assert stable["PLINTH_MODEL_ALIAS"]["value"] == "champion"
    assert stable["PLINTH_MODEL_VERSION"] == {"name": "PLINTH_MODEL_VERSION", "value": "3"}
    assert canary["PLINTH_MODEL_VERSION"]["value"] == "4"
    assert canary_deployment["spec"]["replicas"] == 2, "no controller: values size the canary"
    assert "Role" not in kinds(objects)
    # mlflow.uriSecret is for the EDIT logins (controller, receiver): the serving pods keep the plain URI.
    assert stable["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.plinth-platform.svc.cluster.local:5000"
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert "value" not in canary[name]
        assert canary[name]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-reader"


def secrets_of(pod: dict) -> set[str]:
    """Names of the Secrets a pod spec's containers read their environment from."""
    return {
        var["valueFrom"]["secretKeyRef"]["name"]
        for container in pod["containers"]
        for var in container.get("env", [])
        if "secretKeyRef" in var.get("valueFrom", {})
    }


def test_the_serving_pods_and_the_controller_each_use_their_own_registry_login() -> None:
    objects = render("registry-logins")
    pods = {obj["metadata"]["name"]: obj["spec"]["template"]["spec"] for obj in objects if obj["kind"] == "Deployment"}
    assert {name: secrets_of(pod) for name, pod in pods.items()} == {
        "release-plinth-serving-stable": {"mlflow-reader"},
        "release-plinth-serving-canary": {"mlflow-reader"},
        "release-plinth-serving-rollout": {"mlflow-controller"},
    }
    controller = env_of(pods["release-plinth-serving-rollout"]["containers"][0])
    assert controller["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-controller",
        "key": "password",
    }
    without_controller = render("secrets-and-pins")
    assert "mlflow-controller" not in str(without_controller), "no controller: its Secret is never referenced"


@pytest.mark.parametrize("controller_secret", [[], ["--set", "mlflow.controllerCredentialsSecret.name=mlflow-reader"]])
def test_a_login_shared_by_the_serving_pods_and_the_controller_is_refused_with_one_message(
    controller_secret: list[str],
) -> None:
    result = render_with("--set", "mlflow.credentialsSecret.name=mlflow-reader", *controller_secret)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.stderr
    assert "mlflow.controllerCredentialsSecret.name is required with the rollout controller" in errors[0]
    assert "--set mlflow.controllerCredentialsSecret.name=mlflow-controller" in errors[0]
    # Without the controller (or without any credentials) there is nothing to share.
    assert (
        render_with("--set", "mlflow.credentialsSecret.name=mlflow-reader", "--set", "canary.enabled=false").returncode
        == 0
    )
    assert render_with("--set", "mlflow.controllerCredentialsSecret.name=mlflow-controller").returncode == 0


def test_with_the_controller_git_desires_on_the_canary_and_the_stable_serves_what_was_promoted() -> None:
    result = render_with("--set", "model.version=7", "--set", "model.stable.version=3", "--set", "canary.replicas=2")
    assert result.returncode == 0, result.stderr
    objects = load_documents(result.stdout)
    canary_deployment = named(objects, "Deployment", "release-plinth-serving-canary")
    canary = env_of(canary_deployment["spec"]["template"]["spec"]["containers"][0])
    assert canary["PLINTH_MODEL_VERSION"]["value"] == "7", "the desired version rides on the canary"
    assert "replicas" not in canary_deployment["spec"], "the controller sizes the canary; an apply must not"
    assert not [obj for obj in objects if obj["kind"] == "PodDisruptionBudget" and "canary" in obj["metadata"]["name"]]
    stable_deployment = named(objects, "Deployment", "release-plinth-serving-stable")
    stable = env_of(stable_deployment["spec"]["template"]["spec"]["containers"][0])
    promoted = {"name": "release-plinth-serving-rollout-state", "key": "stableVersion", "optional": True}
    assert stable["PLINTH_MODEL_VERSION"]["valueFrom"] == {"configMapKeyRef": promoted}, (
        "model.stable.version is ignored: the stable serves what the controller promoted"
    )
    assert stable["PLINTH_MODEL_ALIAS"]["value"] == "champion", "the fallback before the controller's first write"
    assert stable_deployment["spec"]["replicas"] == 2
    pod_annotations = stable_deployment["spec"]["template"]["metadata"].get("annotations") or {}
    assert "plinth.dev/served-version" not in pod_annotations, "only the controller writes it, Git never"
    assert "release-plinth-serving-rollout-state" not in [
        obj["metadata"]["name"] for obj in objects if obj["kind"] == "ConfigMap"
    ], "the controller creates and owns its state ConfigMap; the chart never renders it"


def test_only_the_route_the_controller_steers_carries_the_flux_create_only_annotation() -> None:
    annotation = "kustomize.toolkit.fluxcd.io/ssa"
    route = named(render("default"), "HTTPRoute", "release-plinth-serving")
    assert route["metadata"]["annotations"] == {annotation: "IfNotPresent"}
    without_controller = named(render("secrets-and-pins"), "HTTPRoute", "release-plinth-serving")
    assert annotation not in (without_controller["metadata"].get("annotations") or {})


def test_default_stable_follows_the_champion_alias_until_the_controller_records_a_version() -> None:
    objects = render("default")
    deployment = named(objects, "Deployment", "release-plinth-serving-stable")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    assert env["PLINTH_MODEL_ALIAS"]["value"] == "champion"
    assert "value" not in env["PLINTH_MODEL_VERSION"]
    assert env["PLINTH_MODEL_VERSION"]["valueFrom"]["configMapKeyRef"]["optional"] is True
    canary_pod = named(objects, "Deployment", "release-plinth-serving-canary")["spec"]["template"]["spec"]
    canary = env_of(canary_pod["containers"][0])
    assert canary["PLINTH_MODEL_ALIAS"]["value"] == "challenger"
    assert "PLINTH_MODEL_VERSION" not in canary, "no model.version: the canary follows the challenger alias"
    assert env["BENTOML_HOME"]["value"].startswith("/tmp/")
    assert (env["PLINTH_EXPLAIN"]["value"], env["PLINTH_EXPLAIN_MAX_ROWS"]["value"]) == ("on", "20")  # explain.*
    assert env["MLFLOW_TRACKING_URI"]["value"].startswith("http://mlflow.")
    assert container["image"] == "ghcr.io/plinth-mlops/plinth-serving:0.1.0"
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert deployment["spec"]["template"]["metadata"]["labels"]["plinth.dev/track"] == "stable"


def test_image_tag_defaults_to_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    pyproject = (CHART.parents[1] / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in pyproject


def test_an_image_digest_pins_every_pod_and_a_malformed_one_is_refused() -> None:
    digest = "sha256:" + "ab" * 32
    result = render_with("--set", f"image.digest={digest}")
    assert result.returncode == 0, result.stderr
    images = {
        container["image"]
        for _, spec in pod_specs(load_documents(result.stdout))
        for container in spec["containers"]
        if "plinth-serving" in container["image"]
    }
    assert images == {f"ghcr.io/plinth-mlops/plinth-serving:0.1.0@{digest}"}
    refused = render_with("--set", "image.digest=sha256:abc")
    assert refused.returncode != 0
    assert "digest" in refused.stderr


def test_controller_runs_the_contract_command_with_the_analysis_spec() -> None:
    objects = render("default")
    pod = named(objects, "Deployment", "release-plinth-serving-rollout")["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    flags = dict(zip(command[3::2], command[4::2], strict=True))
    assert command[:3] == ["python", "-m", "serving.rollout"]
    assert list(flags) == [
        "--mode",
        "--spec",
        "--namespace",
        "--httproute",
        "--stable-service",
        "--canary-service",
        "--canary-deployment",
        "--stable-deployment",
        "--state-configmap",
        "--prometheus-url",
        "--model-name",
        "--environment",
        "--metrics-port",
    ], "no --stable-version/--canary-version: the controller reads the desired version from the canary"
    assert flags == {
        "--mode": "cluster",
        "--spec": "/etc/plinth/analysis.yaml",
        "--namespace": NAMESPACE,
        "--httproute": "release-plinth-serving",
        "--stable-service": "release-plinth-serving-stable",
        "--canary-service": "release-plinth-serving-canary",
        "--canary-deployment": "release-plinth-serving-canary",
        "--stable-deployment": "release-plinth-serving-stable",
        "--state-configmap": "release-plinth-serving-rollout-state",
        "--prometheus-url": "http://prometheus-operated.monitoring.svc:9090",
        "--model-name": "plinth-classifier",
        "--environment": "$(PLINTH_ENVIRONMENT)",
        "--metrics-port": "9100",
    }
    env = env_of(pod["containers"][0])
    assert env["PLINTH_ENVIRONMENT"]["value"] == "staging"
    # No tick waits minutes on a registry that does not answer (MLflow's default: 120 s, 7 retries).
    assert (env["MLFLOW_HTTP_REQUEST_TIMEOUT"]["value"], env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]["value"]) == ("10", "1")
    assert pod["serviceAccountName"] == "release-plinth-serving-rollout"
    config = named(objects, "ConfigMap", "release-plinth-serving-rollout")
    analysis = yaml.safe_load(config["data"]["analysis.yaml"])
    assert analysis["steps"] == [10, 25, 50, 100]
    assert [check["name"] for check in analysis["checks"]] == [
        "success-rate",
        "latency-p99",
        "prediction-divergence",
        "input-drift",
    ]


def test_servicemonitor_turns_the_track_pod_label_into_a_metric_label() -> None:
    monitor = named(render("default"), "ServiceMonitor", "release-plinth-serving")
    serving, controller = monitor["spec"]["endpoints"]
    assert serving["port"] == "http"
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_label_plinth_dev_track"],
        "targetLabel": "track",
        "action": "replace",
    } in serving["relabelings"]
    # The operator's `endpoint` target label (the port name) must not shadow BentoML's route label.
    assert {"action": "labeldrop", "regex": "endpoint"} in serving["relabelings"]
    assert controller["port"] == "metrics"


def test_prometheus_rules_cover_the_alerts_and_pass_promtool(tmp_path) -> None:
    rule = named(render("default"), "PrometheusRule", "release-plinth-serving")
    alerts = [entry["alert"] for group in rule["spec"]["groups"] for entry in group["rules"]]
    assert alerts == [
        "PlinthHighErrorRate",
        "PlinthHighLatencyP99",
        "PlinthPredictionDivergence",
        "PlinthPredictionShift",
        "PlinthInputDrift",
        "PlinthRolloutFailed",
        "PlinthRolloutRefused",
    ]
    exprs = " ".join(entry["expr"] for group in rule["spec"]["groups"] for entry in group["rules"])
    for metric in (
        "bentoml_service_request_total",
        "bentoml_service_request_duration_seconds_bucket",
        "plinth_prediction_probability_sum",
        "plinth_prediction_value_sum",
        "plinth_input_drift_psi",
        "plinth_rollout_decisions_total",
        "plinth_rollout_refusals_total",
    ):
        assert metric in exprs
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`): PromQL syntax not checked")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def prediction_series(metric: str, expr: str, track: str, means: dict[str, float]) -> list[dict[str, str]]:
    """Input series for `promtool test rules`: 60 observations a minute with the given mean per class."""
    namespace = re.search(r'namespace="([^"]+)"', expr).group(1)  # type: ignore[union-attr]
    service = re.search(r'service=~"([^"]+)"', expr).group(1).replace("(stable|canary)", track)  # type: ignore[union-attr]
    series = []
    for label, mean in means.items():
        selector = f'namespace="{namespace}", service="{service}", track="{track}"' + (
            f', class="{label}"' if label else ""
        )
        series.append({"series": f"{metric}_sum{{{selector}}}", "values": f"0+{60 * mean:g}x30"})
        series.append({"series": f"{metric}_count{{{selector}}}", "values": "0+60x30"})
    return series


def test_prediction_alerts_fire_per_class_and_for_regression(tmp_path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`): the alert rules cannot be evaluated")
    rule = named(render("default"), "PrometheusRule", "release-plinth-serving")
    rules = {entry["alert"]: entry for group in rule["spec"]["groups"] for entry in group["rules"]}
    divergence, shift = rules["PlinthPredictionDivergence"], rules["PlinthPredictionShift"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    probability = "plinth_prediction_probability"
    inputs = [
        *prediction_series(probability, divergence["expr"], "canary", {"0": 0.3, "1": 0.3, "2": 0.4}),
        *prediction_series(probability, divergence["expr"], "stable", {"0": 0.3, "1": 0.55, "2": 0.15}),
        *prediction_series("plinth_prediction_value", shift["expr"], "canary", {"": 190.0}),
        *prediction_series("plinth_prediction_value", shift["expr"], "stable", {"": 150.0}),
    ]
    model = divergence["labels"]["model"]
    expected = {
        "PlinthPredictionDivergence": [
            {
                "exp_labels": {"severity": "warning", "model": model, "class": label},
                "exp_annotations": {
                    "summary": f"Canary and stable mean P(class {label}) of {model} differ by more than 0.1"
                },
            }
            for label in ("1", "2")
        ],
        "PlinthPredictionShift": [
            {
                "exp_labels": {"severity": "warning", "model": model},
                "exp_annotations": {"summary": shift["annotations"]["summary"]},
            }
        ],
    }
    assert_promtool_alerts(promtool, tmp_path, inputs, "25m", expected)


def test_a_refused_controller_fires_its_alert_and_a_quiet_one_does_not(tmp_path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`): the alert rules cannot be evaluated")
    rule = named(render("default"), "PrometheusRule", "release-plinth-serving")
    refused = next(
        entry
        for group in rule["spec"]["groups"]
        for entry in group["rules"]
        if entry["alert"] == "PlinthRolloutRefused"
    )
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    namespace = re.search(r'namespace="([^"]+)"', refused["expr"]).group(1)  # type: ignore[union-attr]
    inputs = [
        # Declared at 0 from the controller's start (telemetry.declare_series), then three admission denials.
        {
            "series": f'plinth_rollout_refusals_total{{namespace="{namespace}", code="422"}}',
            "values": "0x10 1 2 3 3x20",
        },
        {"series": f'plinth_rollout_refusals_total{{namespace="{namespace}", code="403"}}', "values": "0x35"},
    ]
    model = refused["labels"]["model"]
    summary = refused["annotations"]["summary"].replace("{{ $labels.code }}", "422")
    expected = [
        {
            "exp_labels": {"severity": "warning", "model": model, "code": "422", "namespace": namespace},
            "exp_annotations": {"summary": summary},
        }
    ]
    assert_promtool_alerts(promtool, tmp_path, inputs, "15m", {"PlinthRolloutRefused": expected})
    assert_promtool_alerts(promtool, tmp_path, inputs, "34m", {"PlinthRolloutRefused": []})


def test_hpa_scales_only_the_stable_track() -> None:
    objects = render("node-pools")
    hpa = named(objects, "HorizontalPodAutoscaler", "release-plinth-serving-stable")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "release-plinth-serving-stable"
    assert "replicas" not in named(objects, "Deployment", "release-plinth-serving-stable")["spec"]
    pod = named(objects, "Deployment", "release-plinth-serving-canary")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"plinth.dev/pool": "serving"}
    assert pod["tolerations"][0]["value"] == "serving"
    spread = pod["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"]["matchLabels"]["plinth.dev/track"] == "canary"


STORE = [
    *("--set", "feedback.enabled=true", "--set", "feedback.store.secretName=plinth-predictions-app"),
    *("--set", "feedback.tokensSecret=plinth-labellers"),
]
STORE_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "plinth-platform"}},
    "podSelector": {"matchLabels": {"cnpg.io/cluster": "plinth-predictions"}},
}
WITH_STORE = [*STORE, "--set-json", f"feedback.store.peers={json.dumps([STORE_PEER])}"]


def test_network_policy_admits_only_gateway_prometheus_and_the_test_pod() -> None:
    policy = named(render("default"), "NetworkPolicy", "release-plinth-serving-serving")
    sources = policy["spec"]["ingress"][0]["from"]
    gateway = {"kubernetes.io/metadata.name": "envoy-gateway-system"}  # Envoy Gateway's data plane
    assert sources[0] == {"namespaceSelector": {"matchLabels": gateway}}
    assert sources[1]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
    assert sources[2]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "helm-test"
    assert len(sources) == 3  # no pod-to-pod rule: labels are never forwarded between replicas
    egress = policy["spec"]["egress"]
    assert [port["port"] for rule in egress for port in rule["ports"]] == [53, 53, 5000]


def test_feedback_needs_a_store_secret_and_its_peers() -> None:
    no_secret = render_with(
        "--set", "feedback.enabled=true", "--set-json", f"feedback.store.peers={json.dumps([STORE_PEER])}"
    )
    assert no_secret.returncode != 0
    assert "feedback.store.secretName is required" in no_secret.stderr
    no_peers = render_with(*STORE)
    assert no_peers.returncode != 0
    assert "feedback.store.peers is required" in no_peers.stderr
    no_tokens = render_with(*WITH_STORE, "--set", "feedback.tokensSecret=")  # labels from anyone: refused
    assert no_tokens.returncode != 0
    assert "feedback.tokensSecret is required" in no_tokens.stderr


def test_feedback_reads_the_store_url_from_its_secret_and_runs_one_exporter() -> None:
    clients = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "labelling"}}}]
    result = render_with(*WITH_STORE, "--set-json", f"feedback.clients={json.dumps(clients)}")
    assert result.returncode == 0, result.stderr
    objects = load_documents(result.stdout)
    policy = named(objects, "NetworkPolicy", "release-plinth-serving-serving")
    assert policy["spec"]["ingress"][0]["from"][3:] == clients
    assert policy["spec"]["egress"][-1] == {"to": [STORE_PEER], "ports": [{"port": 5432, "protocol": "TCP"}]}
    store = {"secretKeyRef": {"name": "plinth-predictions-app", "key": "uri"}}
    for name in (
        "release-plinth-serving-stable",
        "release-plinth-serving-canary",
        "release-plinth-serving-live-quality",
    ):
        pod = named(objects, "Deployment", name)["spec"]["template"]
        env = {entry["name"]: entry for entry in pod["spec"]["containers"][0]["env"]}
        assert env["PLINTH_PREDICTION_STORE"]["valueFrom"] == store, name
        assert env["PLINTH_FEEDBACK_MAX_AGE"]["value"] == "30d"
        assert "PLINTH_POD_IP" not in env
        assert not [v for v in pod["spec"].get("volumes", []) if v["name"] == "predictions"]
    exporter = named(objects, "Deployment", "release-plinth-serving-live-quality")
    assert exporter["spec"]["replicas"] == 1
    assert exporter["spec"]["strategy"] == {"type": "Recreate"}
    assert exporter["spec"]["template"]["spec"]["containers"][0]["command"][:3] == [
        "python",
        "-m",
        "serving.model_service.live_quality",
    ]
    live_policy = named(objects, "NetworkPolicy", "release-plinth-serving-live-quality")
    assert [rule["to"] for rule in live_policy["spec"]["egress"]][-1] == [STORE_PEER]
    monitor = named(objects, "ServiceMonitor", "release-plinth-serving")
    assert "live-metrics" in [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]]
    off = render("default")
    assert not [o for o in off if o["metadata"]["name"].endswith("-live-quality")]
    stable = named(off, "Deployment", "release-plinth-serving-stable")["spec"]["template"]
    assert env_of(stable["spec"]["containers"][0])["PLINTH_FEEDBACK"]["value"] == "off"


def test_helm_test_pod_calls_readyz_and_predict() -> None:
    pod = named(render("default"), "Pod", "release-plinth-serving-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    script = container["args"][0]
    assert "/readyz" in script
    assert "/predict" in script
    assert env_of(container)["TARGET"]["value"] == "http://release-plinth-serving-stable:80"


def bentoml_api_routes() -> set[str]:
    """Return the `route=` of every `@bentoml.api(...)` in the serving module: what a client may call."""
    tree = ast.parse((CHART.parents[1] / "serving" / "model_service" / "service.py").read_text())
    return {
        keyword.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "bentoml.api"
        for keyword in node.keywords
        if keyword.arg == "route" and isinstance(keyword.value, ast.Constant)
    }


def gateway_matches(match: dict, method: str, path: str) -> bool:
    """Return whether one HTTPRoute match takes `method path`, as the Gateway API defines Exact and PathPrefix."""
    value, kind = match["path"]["value"], match["path"]["type"]
    if match.get("method", method) != method:
        return False
    if kind == "Exact":
        return path == value
    assert kind == "PathPrefix", kind
    return path == value or path.startswith(value.rstrip("/") + "/")  # by whole path elements


def published(route: dict, method: str, path: str) -> bool:
    return any(gateway_matches(match, method, path) for rule in route["spec"]["rules"] for match in rule["matches"])


# What a client outside the cluster may call: the service's APIs, each with its method (serving/model_service).
MODEL = "/v2/models/plinth-classifier"
PUBLIC = [
    ("POST", "/predict"),
    ("POST", "/explain"),
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", MODEL),
    ("GET", f"{MODEL}/ready"),
    ("POST", f"{MODEL}/infer"),
    ("GET", f"{MODEL}/versions/3"),
    ("GET", f"{MODEL}/versions/3/ready"),
    ("POST", f"{MODEL}/versions/3/infer"),
]
# What stays in the cluster, or is no API: never published (the probes, metrics, docs, labels, other models).
INTERNAL = [
    *[(method, path) for method in ("GET", "POST") for path in ("/", "/metrics", "/docs", "/docs.json")],
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("POST", "/feedback"),
    ("GET", "/predict"),
    ("GET", f"{MODEL}/infer"),
    ("POST", f"{MODEL}/ready"),
    ("POST", "/v2/models/other/infer"),
    ("GET", "/v2/models/plinth-classifier-2"),
    ("POST", "/v2/models/plinth-classifier/versionsX/3/infer"),
]


def test_the_route_publishes_the_apis_and_nothing_else() -> None:
    from serving.model_service.explain import ROUTE as EXPLAIN_ROUTE
    from serving.model_service.v2_route import INFER_PATH, MODEL_PATH

    route = named(render("default"), "HTTPRoute", "release-plinth-serving")
    prediction, open_inference = route["spec"]["rules"]
    assert {m["path"]["value"] for m in prediction["matches"]} == bentoml_api_routes() | {EXPLAIN_ROUTE}
    assert all(m["method"] == "POST" and m["path"]["type"] == "Exact" for m in prediction["matches"])
    assert all(m["path"]["value"].startswith("/v2") for m in open_inference["matches"]), "a rule of its own"
    for method, path in PUBLIC:
        assert published(route, method, path), f"{method} {path} is an API the Gateway must publish"
        if path.startswith("/v2/models/"):  # one the service answers, with that method
            assert MODEL_PATH.fullmatch(path), path
            assert (method == "POST") == bool(INFER_PATH.fullmatch(path)), path
    for method, path in INTERNAL:
        assert not published(route, method, path), f"{method} {path} must stay in the cluster"
    monitor = named(render("default"), "ServiceMonitor", "release-plinth-serving")
    assert monitor["spec"]["endpoints"][0].get("path", "/metrics") == "/metrics", "Prometheus scrapes in-cluster"


def test_the_published_paths_are_values() -> None:
    result = render_with("--set", "httpRoute.paths={/predict,/v2/predict,/explain}")
    assert result.returncode == 0, result.stderr
    route = named(load_documents(result.stdout), "HTTPRoute", "release-plinth-serving")
    values = [match["path"]["value"] for match in route["spec"]["rules"][0]["matches"]]
    assert values == ["/predict", "/v2/predict", "/explain"], "/explain once, though listed and enabled"
    result = render_with("--set", "httpRoute.openInference=false", "--set", "explain.enabled=false")
    assert result.returncode == 0, result.stderr
    route = named(load_documents(result.stdout), "HTTPRoute", "release-plinth-serving")
    assert [rule["matches"] for rule in route["spec"]["rules"]] == [
        [{"path": {"type": "Exact", "value": "/predict"}, "method": "POST"}]
    ]
    assert not published(route, "POST", "/explain")
    assert not published(route, "GET", "/v2/health/ready")
    result = render_with("--set", "model.name=churn-classifier.v2")
    assert result.returncode == 0, result.stderr
    route = named(load_documents(result.stdout), "HTTPRoute", "release-plinth-serving")
    assert published(route, "POST", "/v2/models/churn-classifier.v2/infer")
    assert not published(route, "POST", f"{MODEL}/infer")


SIGNED_PODS = ("release-plinth-serving-stable", "release-plinth-serving-canary", "release-plinth-serving-rollout")


def signing_of(objects: list[dict], name: str) -> tuple[dict, dict, dict, dict]:
    """Return (pod template, container, its mounts by name, the pod's volumes by name) of one Deployment."""
    template = named(objects, "Deployment", name)["spec"]["template"]
    container = template["spec"]["containers"][0]
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in template["spec"]["volumes"]}
    return template, container, mounts, volumes


def test_the_public_key_is_mounted_where_every_pod_that_loads_a_model_verifies_it() -> None:
    objects = render("default")
    config = named(objects, "ConfigMap", "release-plinth-serving-signing")
    assert config["data"]["public.pem"].strip() == EXAMPLE_PUBLIC_KEY.read_text().strip()
    checksums = set()
    for name in SIGNED_PODS:
        template, container, mounts, volumes = signing_of(objects, name)
        assert mounts["signing"] == {"name": "signing", "mountPath": "/etc/plinth/signing", "readOnly": True}, name
        assert volumes["signing"] == {"name": "signing", "configMap": {"name": "release-plinth-serving-signing"}}
        env = env_of(container)
        assert env["PLINTH_VERIFY_KEY"]["value"] == "/etc/plinth/signing/public.pem", name
        assert env["PLINTH_REQUIRE_SIGNATURE"]["value"] == "true", name
        checksums.add(template["metadata"]["annotations"]["checksum/signing"])
    assert len(checksums) == 1
    # The analysis spec stays at its path, as one file beside the key rather than a volume the key mounts into.
    _, _, mounts, _ = signing_of(objects, "release-plinth-serving-rollout")
    assert mounts["analysis"]["mountPath"] == "/etc/plinth/analysis.yaml"


def test_a_new_public_key_restarts_the_pods(tmp_path) -> None:
    other = tmp_path / "other.pem"
    other.write_text(EXAMPLE_PUBLIC_KEY.read_text().replace("MFkw", "MFkx", 1))
    before = signing_of(render("default"), SIGNED_PODS[0])[0]["metadata"]["annotations"]["checksum/signing"]
    result = render_with("--set-file", f"signing.publicKey={other}")
    assert result.returncode == 0, result.stderr
    after = signing_of(load_documents(result.stdout), SIGNED_PODS[0])[0]["metadata"]["annotations"]
    assert after["checksum/signing"] != before


def test_required_signatures_without_a_key_are_refused_with_one_message() -> None:
    result = render_with(signing=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.stderr
    assert "signing.publicKey is required while signing.required is true" in errors[0]
    assert "plinth-signing-key" in errors[0]
    assert "openssl ec -in private.pem -pubout" in errors[0]
    refused = render_with("--set", "signing.publicKey=not a key", signing=False)
    assert refused.returncode != 0
    assert "/signing/publicKey" in refused.stderr, refused.stderr


def test_without_required_signatures_no_key_is_needed_and_the_pods_say_so() -> None:
    result = render_with("--set", "signing.required=false", signing=False)
    assert result.returncode == 0, result.stderr
    objects = load_documents(result.stdout)
    assert not [obj for obj in objects if obj["metadata"]["name"] == "release-plinth-serving-signing"]
    for name in SIGNED_PODS:
        _, container, mounts, volumes = signing_of(objects, name)
        env = env_of(container)
        assert env["PLINTH_REQUIRE_SIGNATURE"]["value"] == "false", name
        assert "PLINTH_VERIFY_KEY" not in env, name
        assert "signing" not in mounts, name
        assert "signing" not in volumes, name
    # With a key but not required: the key is still mounted, so a tampered signed model is refused.
    result = render_with("--set", "signing.required=false")
    _, container, mounts, _ = signing_of(load_documents(result.stdout), SIGNED_PODS[0])
    assert env_of(container)["PLINTH_REQUIRE_SIGNATURE"]["value"] == "false"
    assert "signing" in mounts
