"""One warning a minute for failures that repeat: a store or an archive that is down must not flood the log.

The request path never fails on them; the log says, at most once per WARN_EVERY_S, how many failures there
were since its last line, so a reader sees both that it still happens and how often.
"""

from __future__ import annotations

import time

WARN_EVERY_S = 60.0


class ThrottledFailures:
    """Counts failures and says when the next warning is due (with the count since the last one)."""

    def __init__(self, every_s: float = WARN_EVERY_S) -> None:
        self.every_s = every_s
        self.warned_at = -every_s
        self.unreported = 0

    def failed(self) -> int | None:
        """Count one failure; return how many to report now, or None until the next warning is due."""
        self.unreported += 1
        now = time.monotonic()
        if now - self.warned_at < self.every_s:
            return None
        count, self.warned_at, self.unreported = self.unreported, now, 0
        return count
