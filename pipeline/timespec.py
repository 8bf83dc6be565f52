"""Durations as users type them (pure): "90s", "15m", "2h", "7d", "2w"."""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"([0-9]{1,9})([smhdw])")


def parse_duration(text: str) -> timedelta:
    """A positive whole number and a unit (s, m, h, d, w). Raises ValueError saying the form."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"{text[:40]!r} is not a duration like 90s, 15m, 2h, 7d or 2w")
    return timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])
