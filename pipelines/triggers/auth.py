"""Who may post alerts to the receiver, and how often: a bearer token and a token bucket.

An alert starts a training run, so the receiver is a door into the pipeline: a sender must present the token
Alertmanager was configured with (`http_config.authorization`), and even an authenticated sender (a
misconfigured rule, a stolen token) is held to a rate, so a flood of notifications becomes 429s, not MLflow
writes. The token comes from a file (a mounted Secret) or the environment, never from a flag, so it shows in
no process list; a local receiver without one generates one beside its registry and hands it to its
Alertmanager.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ENV_TOKEN_FILE = "PLINTH_TRIGGER_TOKEN_FILE"
ENV_TOKEN = "PLINTH_TRIGGER_TOKEN"
TOKEN_FILE_NAME = "trigger-token"
# A token shorter than this is a placeholder, not a secret.
MIN_TOKEN_CHARS = 16


class TokenError(ValueError):
    """No usable token; the message is the one line to print, naming the flag or variable."""


def read_token(path: Path | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """Return the token from `path`, else $PLINTH_TRIGGER_TOKEN_FILE's file, else $PLINTH_TRIGGER_TOKEN; None if unset.

    Raises:
        TokenError: the file cannot be read, or the token is empty or shorter than MIN_TOKEN_CHARS.
    """
    source, where = None, ""
    file = path or (Path(environ[ENV_TOKEN_FILE]) if environ.get(ENV_TOKEN_FILE) else None)
    if file is not None:
        where = "--token-file" if path else f"${ENV_TOKEN_FILE}"
        try:
            source = file.read_text().strip()
        except OSError as error:
            raise TokenError(f"{where} {file}: cannot read the token ({error.strerror})") from error
    elif environ.get(ENV_TOKEN) is not None:
        where, source = f"${ENV_TOKEN}", environ[ENV_TOKEN].strip()
    if source is None:
        return None
    if len(source) < MIN_TOKEN_CHARS:
        raise TokenError(f"{where}: the token must be at least {MIN_TOKEN_CHARS} characters")
    return source


def local_token(directory: Path) -> Path:
    """Return `directory`/trigger-token, created (owner-only, random) if absent: the local receiver's token file."""
    path = directory / TOKEN_FILE_NAME
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path


def receiver_token(token_file: Path | None, cluster: bool, home: Path) -> tuple[str, str]:
    """Return the receiver's token and where it came from; a local receiver without one gets one in `home`.

    Raises:
        TokenError: an unreadable or short token, or none at all on a cluster (`cluster`: runs go to KFP).
    """
    token = read_token(token_file)
    if token is not None:
        return token, str(token_file or f"${ENV_TOKEN_FILE} or ${ENV_TOKEN}")
    if cluster:
        raise TokenError(
            f"--token-file is required with --kfp-host (or ${ENV_TOKEN_FILE} / ${ENV_TOKEN}): "
            "an unauthenticated receiver would let anyone who reaches it start training runs"
        )
    path = local_token(home)
    return path.read_text().strip(), str(path)


def new_token() -> str:
    """Return a fresh random token (for an in-process receiver and the Alertmanager it configures)."""
    return secrets.token_urlsafe(32)


def authorized(header: str | None, token: str) -> bool:
    """Return whether an Authorization header carries `Bearer <token>` (compared in constant time)."""
    expected = f"Bearer {token}".encode()
    return hmac.compare_digest((header or "").strip().encode(), expected)


class RateLimit:
    """A token bucket: `burst` notifications at once, refilled at `per_second`; thread-safe."""

    def __init__(self, per_second: float = 1.0, burst: int = 60, clock: Callable[[], float] = time.monotonic) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError(f"rate limit: per_second must be > 0 and burst >= 1, got {per_second}, {burst}")
        self.per_second, self.burst, self.clock = per_second, burst, clock
        self.tokens, self.at = float(burst), clock()
        self.lock = threading.Lock()

    def allow(self) -> bool:
        """Take one token if there is one; False means answer 429."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_second)
            self.at = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True

    def retry_after(self) -> int:
        """Return whole seconds until the next token (the 429's Retry-After)."""
        with self.lock:
            return max(1, int((1 - self.tokens) / self.per_second + 0.999))
