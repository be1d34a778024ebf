"""Durations as people write them in settings: a number of seconds, or a whole number with s/m/h/d.

Shared by the retraining guard rails (`pipelines.triggers.policy`) and the model service's settings, so
`6h` means the same thing in a trigger policy file and in an environment variable.
"""

from __future__ import annotations

import re
from datetime import timedelta

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | int | float) -> timedelta:
    """Return `value` ("90s", "30m", "6h", "1d" or a number of seconds) as a timedelta.

    Raises:
        ValueError: the value is neither; the message quotes it.
    """
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    match = DURATION.match(str(value).strip())
    if match is None:
        raise ValueError(f"duration {value!r}: expected seconds or a number with s/m/h/d, e.g. 6h")
    return timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])
