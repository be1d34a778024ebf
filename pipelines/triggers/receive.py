"""The trigger receiver: an Alertmanager webhook that turns firing drift and live-quality alerts into runs.

`python -m pipelines.triggers.receive --port 9095 --tracking-uri … --model-name … --token-file …` starts
runs locally (the `make train` entry point); with `--kfp-host` it submits them to Kubeflow Pipelines.
`POST /alerts` takes Alertmanager's webhook JSON with `Authorization: Bearer <token>`, `GET /metrics` serves
`plinth_trigger_*`, `GET /healthz` answers ok.

An alert starts a training run, so nothing reaches MLflow before the sender has shown the token (401
otherwise), the notification is within the rate limit (429) and its alerts name this model in their `model`
label (others are counted and ignored). A client that stalls mid-request is dropped after `--timeout`
seconds. A malformed notification gets a 400 naming the field (Alertmanager does not retry a 4xx); when the
registry cannot be read or written the answer is a 503, which Alertmanager retries, so no trigger is lost
to an MLflow restart.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from prometheus_client import Counter
from requests import RequestException

from components.common.plain_http import EndpointHandler
from components.common.redact import redact
from components.common.state import plinth_home
from pipelines.triggers.act import Actor, Outcome
from pipelines.triggers.alerts import ALERT_KINDS, FIRING, Alert, PayloadError, parse, to_trigger
from pipelines.triggers.auth import (
    ENV_TOKEN,
    ENV_TOKEN_FILE,
    RateLimit,
    TokenError,
    authorized,
    receiver_token,
)
from pipelines.triggers.policy import IGNORE
from pipelines.triggers.wiring import WiringError, add_arguments, build, log_redacted

LOG = logging.getLogger("plinth.triggers")
MAX_BODY = 1 << 20
# Seconds a connection may take to send its request: a client that stalls is dropped, not waited for.
SOCKET_TIMEOUT = 10.0
RECEIVED = Counter("plinth_trigger_received", "Alerts received, by trigger kind (unknown: not a trigger).", ["kind"])
DECISIONS = Counter("plinth_trigger_decisions", "Triggers decided, by kind and decision.", ["kind", "decision"])
REJECTED = Counter("plinth_trigger_rejected_payloads", "Webhook bodies refused with a 4xx.")
REFUSED = Counter(
    "plinth_trigger_refused",
    "Notifications or alerts refused before MLflow: unauthorized (401), rate_limited (429), "
    "no_model_label and other_model (alerts ignored).",
    ["reason"],
)
UNAUTHORIZED, RATE_LIMITED, NO_MODEL_LABEL, OTHER_MODEL = (
    "unauthorized",
    "rate_limited",
    "no_model_label",
    "other_model",
)


def _first_line(error: BaseException) -> str:
    return redact(str(error).splitlines()[0][:200]) if str(error) else type(error).__name__


def handle(actor: Actor, model_name: str, alerts: list[Alert]) -> list[Outcome]:
    """Act on one notification: one trigger per kind that fires, one ignored record per kind resolved.

    An alert must name this model in its `model` label: one without the label, or with another model's, could
    otherwise retrain whatever model this receiver serves, so it is counted and ignored (nothing recorded).
    """
    groups: dict[tuple[str, str], list[Alert]] = defaultdict(list)
    for alert in alerts:
        kind = ALERT_KINDS.get(alert.name)
        RECEIVED.labels(kind or "unknown").inc()
        model = alert.labels.get("model")
        if kind is None or model != model_name:
            if kind is not None:
                REFUSED.labels(NO_MODEL_LABEL if model is None else OTHER_MODEL).inc()
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


def make_handler(
    actor: Actor, model_name: str, token: str, limit: RateLimit, socket_timeout: float = SOCKET_TIMEOUT
) -> type[BaseHTTPRequestHandler]:
    """Return the request handler class bound to `actor`, accepting notifications that carry `token`."""
    if not token:
        raise ValueError("the trigger receiver needs a token: an unauthenticated alert must not start runs")

    class Handler(EndpointHandler):
        # StreamRequestHandler sets this on the socket: a stalled read ends the connection (slow clients).
        timeout = socket_timeout
        routes = "POST /alerts, GET /metrics, GET /healthz"

        def do_POST(self) -> None:
            if self.path != "/alerts":
                self._answer(404, {"error": f"no such path {self.path}; Alertmanager posts to /alerts"})
                return
            self.close_connection = True  # one notification per connection: nothing left unread is parsed
            if not authorized(self.headers.get("Authorization"), token):
                REFUSED.labels(UNAUTHORIZED).inc()
                error = {"error": "Authorization: expected 'Bearer <token>' with the receiver's token"}
                self._answer(401, error, headers={"WWW-Authenticate": 'Bearer realm="plinth-triggers"'})
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
            if not limit.allow():
                REFUSED.labels(RATE_LIMITED).inc()
                wait = str(limit.retry_after())
                error = {"error": f"rate limit: at most {limit.burst} notifications at once, {limit.per_second:g}/s"}
                self._answer(429, error, headers={"Retry-After": wait})
                return
            raw = self.rfile.read(length)  # a stall here raises TimeoutError: the server drops the connection
            if len(raw) < length:
                return  # the client went away mid-body: nothing to answer
            try:
                outcomes = handle(actor, model_name, parse(raw))
            except PayloadError as error:
                REJECTED.inc()
                self._answer(400, {"error": str(error)})
                return
            except (MlflowException, RequestException, OSError) as error:
                LOG.warning("registry unavailable (503, Alertmanager retries): %s", _first_line(error))
                self._answer(503, {"error": f"registry unavailable, retry: {_first_line(error)}"})
                return
            except Exception as error:  # a garbled history tag, a bug: said, logged, retried by Alertmanager
                LOG.exception("trigger not handled")
                self._answer(500, {"error": f"{type(error).__name__}: {_first_line(error)}"})
                return
            answer = [
                {"kind": o.trigger.kind, "decision": o.decision.action, "reason": o.decision.reason, "run": o.run}
                for o in outcomes
            ]
            self._answer(200, {"outcomes": answer})

        def log_message(self, format: str, *args: Any) -> None:
            LOG.debug(format, *args)

    return Handler


def serve(
    actor: Actor,
    model_name: str,
    host: str,
    port: int,
    *,
    token: str,
    limit: RateLimit | None = None,
    socket_timeout: float = SOCKET_TIMEOUT,
) -> ThreadingHTTPServer:
    """Return the receiver's server bound to host:port (call `serve_forever`, or run it in a thread)."""
    handler = make_handler(actor, model_name, token, limit or RateLimit(), socket_timeout)
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    """Parse flags, then serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a pod)")
    parser.add_argument("--port", type=int, default=9095, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--token-file",
        type=Path,
        help=f"file holding the bearer token senders must present (else ${ENV_TOKEN_FILE}, ${ENV_TOKEN}; "
        "locally, $PLINTH_HOME/trigger-token is created); required with --kfp-host",
    )
    parser.add_argument("--timeout", type=float, default=SOCKET_TIMEOUT, help="seconds a client may stall")
    parser.add_argument("--rate", type=float, default=1.0, help="notifications per second accepted on average")
    parser.add_argument("--burst", type=int, default=60, help="notifications accepted at once")
    add_arguments(parser)
    args = parser.parse_args(argv)
    log_redacted()
    try:
        token, token_source = receiver_token(args.token_file, cluster=bool(args.kfp_host), home=plinth_home())
        limit = RateLimit(args.rate, args.burst)
        wired = build(args)
    except (TokenError, WiringError) as error:
        print(f"error: {redact(str(error))}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"error: --rate/--burst: {error}", file=sys.stderr)
        return 2
    server = serve(
        wired.actor, args.model_name, args.host, args.port, token=token, limit=limit, socket_timeout=args.timeout
    )
    LOG.info(
        "trigger receiver for %s on http://%s:%d/alerts (registry %s, token from %s)",
        args.model_name,
        args.host,
        args.port,
        redact(wired.tracking_uri),
        token_source,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
