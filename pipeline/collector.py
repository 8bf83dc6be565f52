"""Python's cyclic garbage collector for a batch worker: paused within batches, run on a clock.

A batch's objects (messages, records, rows) hold no reference cycles: reference counting frees
them when the batch is done. Left on, the collector counts their allocations and traverses them,
and everything the process keeps, again and again while the next batch is built: ~7% of the
scoring worker's time (bench/score_bench.py) and ~20% of the sink's busy time
(bench/pipeline_bench.py --profile). Paused, it still runs between batches: the young
generations every few seconds and everything every few minutes, so a cycle made anywhere
(an exception's traceback, a library's internals) is still freed.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from types import TracebackType

YOUNG_EVERY_S = 5.0
FULL_EVERY_S = 300.0


class PacedCollector:
    """`with PacedCollector() as collector:` pauses automatic collection (restored on exit, if it
    was on); `collector.tick()` between batches collects when a period is due."""

    def __init__(self, *, young_every_s: float = YOUNG_EVERY_S, full_every_s: float = FULL_EVERY_S,
                 clock: Callable[[], float] = time.monotonic,
                 collect: Callable[[int], object] = gc.collect) -> None:
        if not 0 < young_every_s <= full_every_s:
            raise ValueError("young_every_s must be positive and at most full_every_s")
        self.young_every_s, self.full_every_s = young_every_s, full_every_s
        self._clock, self._collect = clock, collect
        self._last_young = self._last_full = clock()
        self._was_on = False

    def __enter__(self) -> "PacedCollector":
        self._was_on = gc.isenabled()
        gc.disable()
        self._last_young = self._last_full = self._clock()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._was_on:
            gc.enable()

    def tick(self) -> int | None:
        """Collect if a period is due: returns the generation collected (2: all, 1: the young
        ones), or None."""
        now = self._clock()
        if now - self._last_full >= self.full_every_s:
            self._collect(2)
            self._last_full = self._last_young = now
            return 2
        if now - self._last_young >= self.young_every_s:
            self._collect(1)
            self._last_young = now
            return 1
        return None
