"""`plinth status` (`make status`, `python -m serving.rollout.status`): every environment on one screen.

Per environment: the version Git wants (its overlay), what the stable serves, the canary's version and
weight, the analysis phase, and the last outcome with its reason and time. Each overlay is rendered with
kubectl; the cluster is read when a kubeconfig reaches it (the controller's record and the live route),
otherwise the registry says what it knows (the `serving-<env>` alias and the `plinth.rollout.<env>.*`
tags). The `local` row is the one-machine loop: `champion` serves (or what a running `make serve` on
127.0.0.1:$PORT reports), `challenger` waits for `make rollout`. Nothing unreachable raises: its row says
which part could not be read and why.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import config
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from components.common.redact import redact
from components.common.tracking import CHALLENGER, CHAMPION, serving_alias
from serving.gitops import overlay, registry
from serving.gitops.tools import ToolMissingError, find_tool
from serving.model_service.settings import DEFAULT_PORT, ENV_PORT
from serving.rollout.core.state import State

LOCAL = "local"


@dataclass
class Row:
    """One environment's line, and why any part of it is unknown."""

    environment: str
    desired: str = "?"
    serving: str = "?"
    canary: str = "-"
    phase: str = "?"
    outcome: str = "none recorded"
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Coordinates:
    """Where an environment's controller keeps its record, read from the rendered overlay."""

    namespace: str
    state_configmap: str
    httproute: str
    canary_service: str


def kubeconfig_client(context: str | None) -> ApiClient:
    """Return an API client for a kubeconfig context (None: the current one)."""
    return config.new_client_from_config(context=context)


def first_line(error: BaseException) -> str:
    """Return the first line of an error, short."""
    return redact((str(error).strip().splitlines() or [type(error).__name__])[0])[:160]


def controller_args(rendered: str) -> dict[str, str]:
    """Return the `--flag value` pairs of the rollout controller in rendered manifests."""
    for obj in yaml.safe_load_all(rendered):
        if obj and obj.get("kind") == "Deployment" and "--state-configmap" in str(obj):
            command = obj["spec"]["template"]["spec"]["containers"][0]["command"]
            return {flag: value for flag, value in itertools.pairwise(command) if flag.startswith("--")}
    return {}


def served_locally(url: str) -> str | None:
    """Return the model version a local service on `url` reports (`plinth_model_info`), None when none answers."""
    try:
        page = httpx.get(f"{url}/metrics", timeout=1.0)
    except httpx.HTTPError:
        return None
    if page.status_code != 200:
        return None
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            if sample.name == "plinth_model_info" and sample.labels.get("model_version"):
                return sample.labels["model_version"]
    return None


def latest_outcome(versions: list[Any], environment: str) -> tuple[str, str]:
    """Return (phase-like status, "vN status at time: reason") of the newest rollout tagged for `environment`."""
    prefix = f"plinth.rollout.{environment}"
    tagged = [v for v in versions if v.tags.get(f"{prefix}.status")]
    if not tagged:
        return "?", "none recorded"
    newest = max(tagged, key=lambda v: v.tags.get(f"{prefix}.finished_at") or v.tags.get(f"{prefix}.started_at") or "")
    status = newest.tags[f"{prefix}.status"]
    when = newest.tags.get(f"{prefix}.finished_at", "")
    reason = newest.tags.get(f"{prefix}.reason", "")
    return status, f"v{newest.version} {status} {when}{f': {reason}' if reason else ''}".strip()


def coordinates(rendered: str) -> Coordinates:
    """Return where the controller of a rendered overlay keeps its record (KeyError: no controller there)."""
    args = controller_args(rendered)
    return Coordinates(args["--namespace"], args["--state-configmap"], args["--httproute"], args["--canary-service"])


class Status:
    """Collects the rows from Git, the cluster and the registry."""

    def __init__(
        self,
        repo: Path,
        where: registry.Registry,
        model_name: str,
        api_for: Callable[[str], ApiClient] | None = None,
    ) -> None:
        self.repo, self.model_name = repo, model_name
        # Environment name -> API client (default: the kubeconfig's current context for every environment).
        self.api_for = api_for or (lambda _environment: kubeconfig_client(None))
        self.registry_error: str | None = None
        try:
            registry.require_embedded_store(where)
            client = MlflowClient(tracking_uri=where.uri, registry_uri=where.uri)
            self.versions = list(client.search_model_versions(f"name = '{model_name}'"))
            self.aliases = {k: str(v) for k, v in client.get_registered_model(model_name).aliases.items()}
        except registry.RegistryMissingError as error:
            self.versions, self.aliases, self.registry_error = [], {}, first_line(error)
        except Exception as error:  # a registry that is down or has no such model: the rows say so
            self.versions, self.aliases = [], {}
            self.registry_error = f"no {model_name} read ({first_line(error)}); `make train` registers one"

    def local_row(self, service_url: str) -> Row:
        """The one-machine loop: champion serves (what a running `make serve` says, if one runs), challenger waits."""
        row = Row(LOCAL, desired=self.version_of(CHALLENGER), serving=self.version_of(CHAMPION), phase="-")
        row.notes.append("desired = alias challenger (what `make rollout` rolls out), serving = alias champion")
        running = served_locally(service_url)
        if running:
            row.serving = f"v{running}"
            row.notes.append(f"the service on {service_url} serves v{running}")
        status, row.outcome = latest_outcome(self.versions, LOCAL)
        row.phase = status if status != "?" else "-"
        return row

    def version_of(self, alias: str) -> str:
        """Return `vN` for an alias, `-` when it points nowhere."""
        return f"v{self.aliases[alias]}" if alias in self.aliases else "-"

    def environment_row(self, environment: str, kubectl: str | None) -> Row:
        """One overlay's row: Git first, then the cluster, else the registry."""
        row = Row(environment)
        status, row.outcome = latest_outcome(self.versions, environment)
        row.serving, row.phase = self.version_of(serving_alias(environment)), status if status != "?" else "-"
        if kubectl is None:
            row.notes.append("kubectl not found: Git's desired version unknown")
            return row
        try:
            rendered = overlay.render(kubectl, overlay.overlay_dir(self.repo, environment))
            row.desired = f"v{overlay.rendered_desired(rendered).version}"
            where = coordinates(rendered)
        except (overlay.OverlayError, KeyError) as error:
            row.notes.append(f"overlay not readable: {first_line(error)}")
            return row
        try:
            self.from_cluster(row, where)
        except Exception as error:  # no kubeconfig, no route, no permission: the registry's view stands
            row.notes.append(f"cluster unreachable ({first_line(error)}); serving and outcome from the registry")
        return row

    def from_cluster(self, row: Row, where: Coordinates) -> None:
        """Fill serving, canary, phase and outcome from the controller's record and the live route."""
        api = self.api_for(row.environment)
        try:
            found = CoreV1Api(api).read_namespaced_config_map(where.state_configmap, where.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            row.notes.append(f"cluster: no {where.state_configmap} yet (the controller has not run)")
            return
        state = State.from_configmap(found.data, found.metadata.annotations, found.metadata.resource_version)
        status = state.status
        route = CustomObjectsApi(api).get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", where.namespace, "httproutes", where.httproute
        )
        weights = [
            ref.get("weight", 1)
            for rule in route["spec"].get("rules", [])
            for ref in rule.get("backendRefs", [])
            if ref.get("name") == where.canary_service
        ]
        row.serving = f"v{state.stable_version}" if state.stable_version else "-"
        row.phase = status.phase or "-"
        if status.phase in ("progressing", "promoting"):
            row.canary = f"v{status.canary_version} @ {weights[0] if weights else '?'}%"
        if status.outcome:
            outcome = status.outcome
            row.outcome = f"v{outcome.version} {outcome.status} {outcome.at}: {outcome.reason}"
        if state.retry:
            row.notes.append(f"retry of v{state.retry} requested")
        if status.message:
            row.notes.append(status.message)
        row.notes.append(f"from the cluster at {api.configuration.host}")


def render_table(rows: list[Row], header: str, registry_note: str | None) -> str:
    """Return the screen: a header, one line per environment, then the notes."""
    columns = ("ENVIRONMENT", "DESIRED (GIT)", "SERVING", "CANARY", "PHASE", "LAST OUTCOME")
    cells = [columns] + [(r.environment, r.desired, r.serving, r.canary, r.phase, r.outcome[:70]) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns) - 1)]
    lines = [header, ""]
    for line in cells:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1])
    notes = [f"  {row.environment}: {note}" for row in rows for note in row.notes]
    if registry_note:
        notes.insert(0, f"  registry: {registry_note}")
    return "\n".join(lines + (["", *notes] if notes else []))


def main(argv: list[str] | None = None) -> int:
    """Print the status screen; exit 0 even when parts are unreachable (the screen says which)."""
    parser = argparse.ArgumentParser(prog="python -m serving.rollout.status", description=__doc__)
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the GitOps repository (default: here)")
    parser.add_argument("--model-name", default=os.environ.get("PLINTH_MODEL_NAME", "plinth-classifier"))
    parser.add_argument("--tracking-uri", help="MLflow registry (default: $MLFLOW_TRACKING_URI, else the embedded one)")
    parser.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="ENV=CONTEXT",
        help="kubeconfig context per environment (default: the current context)",
    )
    args = parser.parse_args(argv)
    contexts = dict(item.split("=", 1) for item in args.context if "=" in item)
    where = registry.resolve(args.tracking_uri)
    status = Status(args.repo.resolve(), where, args.model_name, lambda env: kubeconfig_client(contexts.get(env)))
    try:
        kubectl: str | None = find_tool("kubectl")
    except ToolMissingError:
        kubectl = None
    rows = [status.local_row(f"http://127.0.0.1:{os.environ.get(ENV_PORT) or DEFAULT_PORT}")]
    rows += [status.environment_row(env, kubectl) for env in overlay.known_environments(args.repo.resolve())]
    header = f"plinth status: {args.model_name} (registry {where.describe()})"
    print(render_table(rows, header, status.registry_error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
