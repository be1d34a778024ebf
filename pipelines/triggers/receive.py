"""The trigger receiver: an Alertmanager webhook that turns firing drift and live-quality alerts into runs.

`python -m pipelines.triggers.receive --port 9095 --tracking-uri … --model-name …` starts runs locally
(the `make train` entry point); with `--kfp-host` it submits them to Kubeflow Pipelines. `POST /alerts`
takes Alertmanager's webhook JSON, `GET /metrics` serves `plinth_trigger_*`, `GET /healthz` answers ok.

A malformed notification gets a 400 naming the field (Alertmanager does not retry a 4xx); when the
registry cannot be read or written the answer is a 503, which Alertmanager retries, so no trigger is lost
to an MLflow restart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlflow.exceptions import MlflowException
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from requests import RequestException

from pipelines.triggers.act import Actor, Outcome
from pipelines.triggers.alerts import ALERT_KINDS, FIRING, Alert, PayloadError, parse, to_trigger
from pipelines.triggers.policy import IGNORE
from pipelines.triggers.wiring import WiringError, add_arguments, build

LOG = logging.getLogger("plinth.triggers")
MAX_BODY = 1 << 20
RECEIVED = Counter("plinth_trigger_received", "Alerts received, by trigger kind (unknown: not a trigger).", ["kind"])
DECISIONS = Counter("plinth_trigger_decisions", "Triggers decided, by kind and decision.", ["kind", "decision"])
REJECTED = Counter("plinth_trigger_rejected_payloads", "Webhook bodies refused with a 4xx.")


def handle(actor: Actor, model_name: str, alerts: list[Alert]) -> list[Outcome]:
    """Act on one notification: one trigger per kind that fires, one ignored record per kind resolved."""
    groups: dict[tuple[str, str], list[Alert]] = defaultdict(list)
    for alert in alerts:
        kind = ALERT_KINDS.get(alert.name)
        RECEIVED.labels(kind or "unknown").inc()
        if kind is None or alert.labels.get("model", model_name) != model_name:
            DECISIONS.labels(kind or "unknown", IGNORE).inc()
            continue
        groups[(kind, alert.status)].append(alert)
    outcomes = []
    for (kind, status), group in sorted(groups.items()):
        trigger = to_trigger(group, kind)
        if status == FIRING:
            outcome = actor.act(trigger)
        else:
            outcome = actor.ignore(trigger, f"resolved: {trigger.reason}; nothing to retrain")
        DECISIONS.labels(kind, outcome.decision.action).inc()
        LOG.info("%s: %s (%s) %s", kind, outcome.decision.action, outcome.decision.reason, outcome.run)
        outcomes.append(outcome)
    return outcomes


def make_handler(actor: Actor, model_name: str) -> type[BaseHTTPRequestHandler]:
    """Return the request handler class bound to `actor`."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any] | bytes, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._answer(200, b"ok\n", "text/plain")
            else:
                self._answer(404, {"error": f"no such path {self.path}; POST /alerts, GET /metrics, GET /healthz"})

        def do_POST(self) -> None:
            if self.path != "/alerts":
                self._answer(404, {"error": f"no such path {self.path}; Alertmanager posts to /alerts"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                REJECTED.inc()
                self._answer(
                    413, {"error": f"Content-Length: {self.headers.get('Content-Length')!r}, at most {MAX_BODY}"}
                )
                return
            try:
                outcomes = handle(actor, model_name, parse(self.rfile.read(length)))
            except PayloadError as error:
                REJECTED.inc()
                self._answer(400, {"error": str(error)})
                return
            except (MlflowException, RequestException, OSError) as error:
                self._answer(503, {"error": f"registry unavailable, retry: {str(error).splitlines()[0][:200]}"})
                return
            except Exception as error:  # a garbled history tag, a bug: said, logged, retried by Alertmanager
                LOG.exception("trigger not handled")
                self._answer(500, {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"})
                return
            answer = [
                {"kind": o.trigger.kind, "decision": o.decision.action, "reason": o.decision.reason, "run": o.run}
                for o in outcomes
            ]
            self._answer(200, {"outcomes": answer})

        def log_message(self, format: str, *args: Any) -> None:
            LOG.debug(format, *args)

    return Handler


def serve(actor: Actor, model_name: str, host: str, port: int) -> ThreadingHTTPServer:
    """Return the receiver's server bound to host:port (call `serve_forever`, or run it in a thread)."""
    server = ThreadingHTTPServer((host, port), make_handler(actor, model_name))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    """Parse flags, then serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a pod)")
    parser.add_argument("--port", type=int, default=9095, help="port to listen on (default: %(default)s)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        wired = build(args)
    except WiringError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    server = serve(wired.actor, args.model_name, args.host, args.port)
    LOG.info(
        "trigger receiver for %s on http://%s:%d/alerts (registry %s)",
        args.model_name,
        args.host,
        args.port,
        wired.tracking_uri,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
