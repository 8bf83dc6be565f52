"""Durations and times as users type them (pure): "90s", "15m", "2h", "7d", "2w"; RFC 3339 or a duration ago."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"([0-9]{1,9})([smhdw])")


def parse_duration(text: str) -> timedelta:
    """A positive whole number and a unit (s, m, h, d, w). Raises ValueError saying the form."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"{text[:40]!r} is not a duration like 90s, 15m, 2h, 7d or 2w")
    return timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])


def parse_time(text: str, now: datetime) -> datetime:
    """An RFC 3339 / ISO 8601 time (UTC when it names no offset), or a duration before `now`
    ("7d" = seven days ago). Raises ValueError saying both forms."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text[:40]!r} is neither an RFC 3339 time (2026-11-01T00:00:00Z) nor a duration "
                         "ago (90s, 15m, 2h, 7d, 2w)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
