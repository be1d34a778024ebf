"""What every trigger entry point shares: the same flags become the same registry, starter, rails and `Actor`.

The receiver (alerts) and the new-data watcher must record into one history and start runs the same way,
or their guard rails would not see each other's runs; so both build their `Actor` here.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from components.common import tracking
from components.common.redact import redact
from components.common.state import local_tracking_uri, plinth_home
from pipelines.compile import compiled_path
from pipelines.training.pipeline import CLUSTER_TRACKING_URI, DEFAULT_MODEL_NAME, PIPELINE_NAME
from pipelines.triggers.act import Actor
from pipelines.triggers.policy import Guardrails
from pipelines.triggers.record import TriggerRecord
from pipelines.triggers.start import ClusterStarter, LocalStarter, Starter, client_for


class WiringError(ValueError):
    """The flags do not make a working actor; the message is the one line to print."""


@dataclass(frozen=True)
class Wired:
    """The actor an entry point acts through, and the registry it records into (for its start-up line)."""

    actor: Actor
    tracking_uri: str


class RedactingFormatter(logging.Formatter):
    """Mask credentials in every URL of a log line, tracebacks included (a tracking URI may carry a password)."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual, then redact."""
        return redact(super().format(record))


def log_redacted(level: int = logging.INFO) -> None:
    """Log to stderr at `level` through RedactingFormatter: no entry point's log line shows a password."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(name)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def without_userinfo(uri: str) -> str:
    """Return `uri` without its `user:password@` part.

    A KFP run parameter is stored in the KFP database and shown in its UI to everyone who may list runs, so the
    URI the steps get carries no credentials: they log in with MLFLOW_TRACKING_USERNAME/PASSWORD from a Secret.
    """
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the registry, model, guard-rail and starter flags every trigger entry point takes."""
    parser.add_argument(
        "--tracking-uri",
        default="",
        help="MLflow tracking URI (default: the in-cluster MLflow with --kfp-host, else $PLINTH_HOME's)",
    )
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="registered model to retrain")
    parser.add_argument("--rails", type=Path, help="guard rails YAML (coolDown, maxRunsPerDay, failureBackoff, …)")
    parser.add_argument("--kfp-host", default="", help="start runs on this Kubeflow Pipelines endpoint, not locally")
    parser.add_argument(
        "--pipeline", type=Path, default=compiled_path("cpu"), help="compiled pipeline (with --kfp-host)"
    )
    parser.add_argument("--experiment", default=PIPELINE_NAME, help="KFP experiment of the runs (with --kfp-host)")
    parser.add_argument("--log-dir", type=Path, help="local runs' logs (default: $PLINTH_HOME/trigger-runs)")


def build(args: argparse.Namespace, source: str = "", target: str = "") -> Wired:
    """Return the actor for parsed `args`; a non-empty `source`/`target` is passed on to every run it starts.

    Raises:
        WiringError: unreadable guard rails, or a `--tracking-uri` that local runs would not record into.
    """
    try:
        rails = Guardrails.load(args.rails) if args.rails else Guardrails()
    except (OSError, ValueError) as error:
        raise WiringError(str(error)) from error
    starter: Starter
    if args.kfp_host:
        tracking_uri = args.tracking_uri or CLUSTER_TRACKING_URI
        params = {"tracking_uri": without_userinfo(tracking_uri), "model_name": args.model_name}
        params |= {"source": source} if source else {}
        params |= {"target_column": target} if target else {}
        starter = ClusterStarter(client_for(args.kfp_host), args.pipeline, args.experiment, params)
    else:
        tracking_uri = local_tracking_uri(plinth_home())
        if args.tracking_uri and args.tracking_uri != tracking_uri:
            raise WiringError(f"local runs record into {tracking_uri}: set PLINTH_HOME, not --tracking-uri")
        flags = ["--model-name", args.model_name]
        flags += ["--source", source] if source else []
        flags += ["--target", target] if target else []
        starter = LocalStarter(args.log_dir or plinth_home() / "trigger-runs", args=flags)
    record = TriggerRecord(tracking.connect(tracking_uri), args.model_name)
    return Wired(Actor(record, starter, rails), tracking_uri)
