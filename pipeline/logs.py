"""How aiaudit's processes log: one plain line format, no terminal control codes, and a warning
that repeats (a broker that is down, a destination that refuses) shown once per interval with a
count of the ones held back.

Every process configures logging through `configure` (or `dict_config` for the Faust delivery
agent, which sets logging up itself); librdkafka's lines come through Python logging too
(pipeline/kafka/config.py), so they look like ours.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from typing import IO, Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REPEAT_S = 60.0

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")
# What varies between repeats of one warning: ids (UUIDs, hex digests), then any number.
_VARYING = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|\b[0-9a-fA-F]{16,}\b|\d+")


def plain(text: str) -> str:
    """`text` without ANSI escape sequences and control characters (newlines and tabs kept)."""
    return _CONTROL.sub("", text)


class PlainFormatter(logging.Formatter):
    """The one line format, with colour codes and other control characters taken out (a library
    that colours its messages, or a hostile value in a message, cannot reach a log file raw)."""

    def __init__(self, fmt: str = FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        return plain(super().format(record))


class RepeatLimit(logging.Filter):
    """Each distinct message at or above `level` (ids and numbers folded: event ids, ports, counters
    and durations vary)
    at most once per `interval_s`; the first one let through after that says how many were held
    back. Messages below `level` pass untouched."""

    def __init__(self, interval_s: float = REPEAT_S, level: int = logging.WARNING,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s, self.level, self.clock = interval_s, level, clock
        self._seen: dict[tuple[str, str], list[float]] = {}  # key -> [last shown, held back since]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        key = (record.name, _VARYING.sub("#", record.getMessage())[:300])
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.interval_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.getMessage()} (repeated {int(seen[1])} more time(s) in the last {now - seen[0]:.0f} s)"
            record.args = ()
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = [now, 0]
        return True


def configure(level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """The root logger to `stream` (stderr) in the one format, repeats limited."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(PlainFormatter())
    handler.addFilter(RepeatLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def dict_config(level: str) -> dict[str, Any]:
    """The same as `configure`, as a logging.config.dictConfig (what Faust's worker takes)."""
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"()": f"{__name__}.PlainFormatter"}},
        "filters": {"repeats": {"()": f"{__name__}.RepeatLimit"}},
        "handlers": {"default": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                 "formatter": "plain", "filters": ["repeats"], "level": level}},
        "root": {"level": level, "handlers": ["default"]},
    }
