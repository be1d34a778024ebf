"""Who may send labels: one bearer token per labelling client, each client rate-limited by a token bucket.

A label moves live quality, and live quality moves the rollout's live-quality check and the
`PlinthLiveQualityLow` alert, which starts retraining. So `POST /feedback` takes a label only from a client
holding a token (`Authorization: Bearer <token>`), and no client can send more than its rate. Tokens come
from a Secret: `PLINTH_FEEDBACK_TOKENS` (comma-separated `client=token` pairs; a bare token is named
`client-<n>` by its position) or, as the chart mounts it, the file named by `PLINTH_FEEDBACK_TOKENS_FILE`
(the same entries, commas or newlines between them). Only each token's SHA-256 is kept, and a presented
token is compared with every client's digest in constant time (`hmac.compare_digest`), all of them, so
neither a token nor which client is near it leaks through timing or a traceback.

The buckets live in each worker process (the route runs on the worker's event loop: no lock needed); the
service gives each worker its share of the rate and burst, so a pod takes about the configured rate.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass

ENV_FEEDBACK_TOKENS = "PLINTH_FEEDBACK_TOKENS"
ENV_FEEDBACK_TOKENS_FILE = "PLINTH_FEEDBACK_TOKENS_FILE"
# A client's name becomes a metric label: short, lowercase, no spaces.
CLIENT_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
MIN_TOKEN_CHARS = 16
MAX_CLIENTS = 100
BEARER = b"bearer "


def digest(token: str) -> str:
    """Return the SHA-256 (hex) a token is kept and compared as."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(text: str, source: str) -> tuple[tuple[str, str], ...]:
    """Return (client, SHA-256 of its token) per entry of `text`; raise ValueError naming `source`, never a token."""
    entries = [entry.strip() for entry in re.split(r"[,\n]", text) if entry.strip() and not entry.startswith("#")]
    clients: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        name, separator, token = entry.partition("=")
        if not separator:
            name, token = f"client-{number}", entry
        if not CLIENT_NAME.fullmatch(name):
            raise ValueError(f"{source}: entry {number}: client name must match {CLIENT_NAME.pattern}")
        if len(token) < MIN_TOKEN_CHARS or any(char.isspace() for char in token):
            rule = f"token must be {MIN_TOKEN_CHARS}+ characters, no spaces"
            raise ValueError(f"{source}: entry {number} ({name}): {rule}")
        if name in clients:
            raise ValueError(f"{source}: client {name} is named twice")
        clients[name] = digest(token)
    if len(clients) > MAX_CLIENTS:
        raise ValueError(f"{source}: at most {MAX_CLIENTS} clients")
    if len(set(clients.values())) < len(clients):
        raise ValueError(f"{source}: two clients share one token")
    return tuple(clients.items())


def read_clients(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Return the labelling clients of PLINTH_FEEDBACK_TOKENS_FILE or PLINTH_FEEDBACK_TOKENS (empty: none)."""
    path = env.get(ENV_FEEDBACK_TOKENS_FILE, "").strip()
    if path and env.get(ENV_FEEDBACK_TOKENS, "").strip():
        raise ValueError(f"{ENV_FEEDBACK_TOKENS} and {ENV_FEEDBACK_TOKENS_FILE}: set one, not both")
    if path:
        try:
            text = open(path, encoding="utf-8").read()  # noqa: SIM115 (a mounted Secret, read once)
        except OSError as error:
            raise ValueError(f"{ENV_FEEDBACK_TOKENS_FILE}={path}: cannot read it ({error.strerror})") from None
        return parse_tokens(text, ENV_FEEDBACK_TOKENS_FILE)
    return parse_tokens(env.get(ENV_FEEDBACK_TOKENS, ""), ENV_FEEDBACK_TOKENS)


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; one label takes one."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.stamp = burst, clock()

    def take(self) -> float:
        """Take one token; return 0 when taken, else the seconds until one is there."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass(frozen=True)
class Verdict:
    """Whether a request may label: its client (None: unauthenticated), and the wait when over its rate."""

    client: str | None
    retry_after_s: float = 0.0
    detail: str = ""


class Clients:
    """The configured labelling clients of one worker: who a bearer token is, and whether it may send now."""

    def __init__(
        self,
        clients: Iterable[tuple[str, str]],
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.digests = [(name, bytes.fromhex(hexdigest)) for name, hexdigest in clients]
        self.names = tuple(name for name, _ in self.digests)
        self.buckets = {name: TokenBucket(rate, max(1.0, burst), clock) for name in self.names}

    def identify(self, authorization: bytes | None) -> Verdict:
        """Return the client whose token the `Authorization` header bears, or why there is none."""
        if not self.digests:
            return Verdict(None, detail=f"Authorization: no labelling client is configured ({ENV_FEEDBACK_TOKENS})")
        if not authorization or authorization[: len(BEARER)].lower() != BEARER:
            return Verdict(None, detail="Authorization: missing; send 'Authorization: Bearer <token>'")
        presented = hashlib.sha256(authorization[len(BEARER) :].strip()).digest()
        found = None
        for name, expected in self.digests:  # every digest is compared: the time says nothing of which matched
            if hmac.compare_digest(presented, expected):
                found = name
        if found is None:
            return Verdict(None, detail="Authorization: the bearer token is not a labelling client's")
        wait = self.buckets[found].take()
        if wait:
            return Verdict(found, wait, f"Authorization: client {found} is over its rate; retry after the wait")
        return Verdict(found)


def retry_after(seconds: float) -> bytes:
    """Return a `Retry-After` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds))).encode()


def local_token(env: MutableMapping[str, str]) -> str | None:
    """Give a one-machine server (`make serve`) a labelling token when it has none; return it to print.

    With PLINTH_FEEDBACK_TOKENS or PLINTH_FEEDBACK_TOKENS_FILE set, those are the clients and nothing is made
    up (None). Otherwise one fresh token, client `local`, is set in `env` for the server it starts.
    """
    if env.get(ENV_FEEDBACK_TOKENS, "").strip() or env.get(ENV_FEEDBACK_TOKENS_FILE, "").strip():
        return None
    token = secrets.token_urlsafe(32)
    env[ENV_FEEDBACK_TOKENS] = f"local={token}"
    return token
