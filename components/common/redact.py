"""One way to show a URL or a message that may hold one: credentials masked, everything else kept.

A tracking URI (`http://user:secret@mlflow:5000`), an object-store URL (`s3://key:secret@bucket/x`) or a signed
URL (`https://host/x?sig=...`) may carry a secret, and MLflow's and fsspec's errors repeat the URL they failed
on. Every message, log line and lineage record that shows one goes through `redact`, so there is one rule to
review: the user-info part of any URL and its query string are masked, the scheme, host and path stay.
"""

from __future__ import annotations

import re

MASK = "***"

# User info with a colon is `user:secret` (or `key:secret`); without one it is a name (abfs's container@account).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s:]*:[^/@\s]*)@")
# A query string after a URL, or after a bare path that starts a word (urllib3's "Max retries exceeded with url:
# /api?token=..." repeats the path and query without the host).
_QUERY = re.compile(r"(?P<url>(?:[A-Za-z][A-Za-z0-9+.-]*://|(?<![^\s(=])/)[^\s?#'\"]*)\?[^\s#'\"]*")


def redact(text: str) -> str:
    """Mask credentials in every URL of `text`: a `user:secret` user-info part and any query string.

    `s3://key:secret@bucket/x` -> `s3://***@bucket/x`, `https://h/x?sig=abc` -> `https://h/x?***`,
    `url: /x?sig=abc` -> `url: /x?***`; abfs's `container@account` names no secret and stays.
    """
    text = _USERINFO.sub(lambda match: f"{match['scheme']}{MASK}@", text)
    return _QUERY.sub(lambda match: f"{match['url']}?{MASK}", text)


def first_line(error: BaseException, limit: int = 200) -> str:
    """Return an error's first line, redacted and cut to `limit` characters: what a log line may show of it."""
    text = str(error).strip()
    return redact(text.splitlines()[0] if text else type(error).__name__)[:limit]
