"""Local traffic router: a weighted reverse proxy on 127.0.0.1 in front of the stable and canary services.

Each request picks its backend once, when it arrives, so a weight change never touches requests already in
flight; `drain` waits for a backend's in-flight requests before its process is stopped. With
`retry_on_stable`, a canary that fails a request (5xx, refused connection) gets it retried once on the
stable (the Gateway API standard channel has no such retry, so the benchmark runs without it).

In the shadow phase the router mirrors: every request the stable answers is also sent to the canary, marked
`x-plinth-mirror: 1`, from one event-loop thread (`mirror.py`) whose answers are counted, paired with the
stable's answer to the same request (`core/paired.py`: label churn) and never returned to a user. The user's
answer never waits for the mirror; when its bound is reached (a slow canary) the copy is dropped, not queued.

In experiment mode (`set_experiment`) the key header (`x-user-id`) is hashed to a variant
(`serving.experiments.assign`): a user meets one variant, across restarts; no key: drawn by weight, counted in
`no_key`. No mirror, no retry there: a variant's failures are its own, for the experiment's guards.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from serving.experiments.assign import Assigner
from serving.model_service.settings import MIRROR_HEADER
from serving.rollout.core.observe import CANARY, STABLE
from serving.rollout.edges.mirror import Mirror

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}
TRACK_HEADER = "x-plinth-track"
UPSTREAM_TIMEOUT_S = 30.0
MIRROR_TIMEOUT_S = 5.0
# Mirrored requests in flight at most: beyond it a copy is dropped, so a slow canary costs no memory or threads.
MIRROR_SLOTS = 32
# An idle upstream connection is dropped after this long, well before uvicorn (BentoML's server) closes its side
# after 5 s: with httpx's default of 5 s too, a request could be written on a connection the server was closing,
# and the user got a 502 for a request no backend ever saw (seen under load in tests/rollout).
KEEPALIVE_EXPIRY_S = 2.0


@dataclass
class RouterStats:
    """What the router saw: per-track answers and when the canary first got traffic."""

    answers: dict[str, dict[int, int]] = field(default_factory=lambda: {STABLE: {}, CANARY: {}})
    first_canary_request: float | None = None
    retried_on_stable: int = 0
    # Mirrored copies by the canary's status (502: no answer), and copies dropped because the pool was full.
    mirrored: dict[int, int] = field(default_factory=dict)
    mirror_dropped: int = 0
    # (time, canary weight) at every change, for timelines and time-to-rollback.
    weights: list[tuple[float, int]] = field(default_factory=list)
    # Experiment mode: requests that carried no key (assigned at random by weight, not sticky).
    no_key: int = 0


class WeightedRouter:
    """Splits requests between two backends by the canary weight (percent)."""

    def __init__(
        self, stable_url: str, canary_url: str | None = None, port: int = 0, retry_on_stable: bool = True
    ) -> None:
        self.retry_on_stable = retry_on_stable
        self.backends = {STABLE: stable_url.rstrip("/"), CANARY: (canary_url or "").rstrip("/")}
        self.weight = 0
        self.mirroring = False
        # Experiment mode: the assigner, the key header and each variant's backend (None: weighted mode).
        self.experiment: Assigner | None = None
        self.key_header = ""
        self.variant_backends: dict[str, str] = {}
        self.stats = RouterStats()
        self.in_flight: dict[str, int] = {}
        self.lock = threading.Lock()
        self.client = httpx.Client(
            timeout=UPSTREAM_TIMEOUT_S, limits=httpx.Limits(max_connections=200, keepalive_expiry=KEEPALIVE_EXPIRY_S)
        )
        # Mirrors use their own connections and thread: a slow canary never holds what users need.
        self.mirror = Mirror(MIRROR_SLOTS, MIRROR_TIMEOUT_S, self.count_mirrored, KEEPALIVE_EXPIRY_S)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self.handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="router", daemon=True)

    @property
    def url(self) -> str:
        """Return the router's base URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> WeightedRouter:
        """Serve in a background thread."""
        self.mirror.start()
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close upstream connections."""
        self.server.shutdown()
        self.server.server_close()
        self.mirror.stop()
        self.client.close()

    def set_weight(self, weight: int) -> None:
        """Send `weight` percent of new requests to the canary."""
        with self.lock:
            self.weight = max(0, min(100, weight)) if self.backends[CANARY] else 0
            self.stats.weights.append((time.time(), self.weight))

    def set_mirror(self, on: bool) -> None:
        """Mirror every request the stable answers to the canary (answers discarded), or stop mirroring."""
        with self.lock:
            self.mirroring = on and bool(self.backends[CANARY])

    def set_backend(self, track: str, url: str | None) -> None:
        """Point a track at another service (None removes the canary, zeroes its weight and stops mirroring)."""
        with self.lock:
            self.backends[track] = (url or "").rstrip("/")
            if track == CANARY and url:
                self.stats.first_canary_request = None
            if not self.backends[CANARY]:
                self.mirroring = False
            if not self.backends[CANARY] and self.weight:
                self.weight = 0
                self.stats.weights.append((time.time(), 0))

    def set_experiment(self, assigner: Assigner | None, backends: dict[str, str], header: str = "") -> None:
        """Route by the key in `header` to each variant's backend (None ends experiment mode)."""
        with self.lock:
            self.experiment = assigner
            self.key_header = header.lower()
            self.mirroring = False
            self.variant_backends = {name: url.rstrip("/") for name, url in backends.items()} if assigner else {}

    def drain(self, url: str, timeout: float = UPSTREAM_TIMEOUT_S) -> bool:
        """Wait until no request is in flight to `url`; True when drained in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.in_flight.get(url.rstrip("/")):
                    return True
            time.sleep(0.02)
        return False

    def choose(self, headers: dict[str, str] | None = None) -> tuple[str, str]:
        """Pick (track or variant, backend URL) for a new request and count it as in flight."""
        with self.lock:
            if self.experiment is not None:
                key = next((v for k, v in (headers or {}).items() if k.lower() == self.key_header), "")
                track = self.experiment.variant_of(key) if key else self.experiment.random_variant()
                self.stats.no_key += 0 if key else 1
                url = self.variant_backends[track]
                self.in_flight[url] = self.in_flight.get(url, 0) + 1
                return track, url
            track = CANARY if self.backends[CANARY] and random.random() * 100 < self.weight else STABLE
            url = self.backends[track]
            self.in_flight[url] = self.in_flight.get(url, 0) + 1
            if track == CANARY and self.stats.first_canary_request is None:
                self.stats.first_canary_request = time.time()
            return track, url

    def release(self, url: str, track: str, status: int) -> None:
        """Count an answer and take the request off the in-flight list."""
        with self.lock:
            self.in_flight[url] -= 1
            answers = self.stats.answers.setdefault(track, {})
            answers[status] = answers.get(status, 0) + 1

    def send(
        self, track: str, url: str, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, httpx.Response | None]:
        """Send one request to one backend (already counted in flight) and release it."""
        try:
            response = self.client.request(method, url + path, headers=headers, content=body)
        except httpx.HTTPError:
            self.release(url, track, 502)
            return 502, None
        self.release(url, track, response.status_code)
        return response.status_code, response

    def mirror_copy(self, method: str, path: str, headers: dict[str, str], body: bytes) -> int | None:
        """Hand a marked copy of the request to the mirror, if mirroring; never blocks the caller.

        Returns the copy's pairing ticket (`mirror.Mirror.copy`), None when nothing was mirrored.
        """
        with self.lock:
            url = self.backends[CANARY] if self.mirroring else ""
        ticket = self.mirror.copy(method, url + path, {**headers, MIRROR_HEADER: "1"}, body) if url else None
        if url and ticket is None:
            with self.lock:
                self.stats.mirror_dropped += 1
        return ticket

    def count_mirrored(self, status: int) -> None:
        """Count one mirrored copy by the canary's status; the answer itself is discarded."""
        with self.lock:
            self.stats.mirrored[status] = self.stats.mirrored.get(status, 0) + 1

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, httpx.Response | None]:
        """Send one request upstream (mirrored to the canary in the shadow phase).

        With `retry_on_stable`, a canary 5xx or refused connection is retried once on the stable, like a
        mesh retry policy (`retryOn: 5xx`): /predict is idempotent, the canary's own metrics still count
        its failure, and the client gets the stable's answer instead.
        """
        headers = {key: value for key, value in headers.items() if key.lower() != MIRROR_HEADER}
        track, url = self.choose(headers)
        ticket = self.mirror_copy(method, path, headers, body) if track == STABLE else None
        status, response = self.send(track, url, method, path, headers, body)
        self.mirror.answered(ticket, path, body, status, response)  # paired with the canary's copy
        if track == CANARY and self.retry_on_stable and status >= 500 and self.experiment is None:
            with self.lock:
                self.stats.retried_on_stable += 1
                track, url = STABLE, self.backends[STABLE]
                self.in_flight[url] = self.in_flight.get(url, 0) + 1
            status, response = self.send(track, url, method, path, headers, body)
        return status, track, response

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """Build the request handler bound to this router."""
        router = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Stay quiet: the controller prints what matters."""

            def relay(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                status, track, response = router.forward(self.command, self.path, headers, body)
                content = response.content if response is not None else b'{"error": "bad gateway"}'
                self.send_response(status)
                if response is not None:
                    for key, value in response.headers.items():
                        if key.lower() not in HOP_HEADERS:
                            self.send_header(key, value)
                self.send_header(TRACK_HEADER, track)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = relay  # BaseHTTPRequestHandler dispatches on these names

        return Handler
