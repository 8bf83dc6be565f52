"""The batch workers' pacing of Python's cyclic garbage collector (pipeline/collector.py)."""

from __future__ import annotations

import gc
import time

import pytest

from aiaudit.pipeline.collector import PacedCollector


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_young_generations_every_period_and_everything_at_the_longer_one() -> None:
    clock, collected = Clock(), []
    collector = PacedCollector(young_every_s=5, full_every_s=12, clock=clock, collect=collected.append)
    seen = []
    for _ in range(40):  # 20 s in half-second steps
        clock.now += 0.5
        seen.append(collector.tick())
    assert collected == [1, 1, 2, 1]  # at 5 s, 10 s, 12 s (everything, which resets the young period), 17 s
    assert [g for g in seen if g is not None] == collected
    assert seen.index(2) == 23  # the 24th half second: 12 s after the start


def test_a_full_collection_resets_the_young_period() -> None:
    clock, collected = Clock(), []
    collector = PacedCollector(young_every_s=5, full_every_s=5, clock=clock, collect=collected.append)
    clock.now += 5
    assert collector.tick() == 2  # both due: everything, once
    clock.now += 4.9
    assert collector.tick() is None
    assert collected == [2]


def test_paused_inside_and_restored_after_even_on_an_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with PacedCollector():
            assert not gc.isenabled()
            raise RuntimeError("a batch failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with PacedCollector():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_real_collector_frees_a_cycle_made_while_paused() -> None:
    class Node:
        pass

    with PacedCollector(young_every_s=0.001, full_every_s=3600) as collector:
        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        alive = len([o for o in gc.get_objects() if type(o) is Node])
        del a, b
        assert alive == 2
        time.sleep(0.002)
        assert collector.tick() == 1
        assert not [o for o in gc.get_objects() if type(o) is Node]


@pytest.mark.parametrize("young, full", [(0, 5), (-1, 5), (6, 5)])
def test_periods_out_of_order_are_refused(young: float, full: float) -> None:
    with pytest.raises(ValueError):
        PacedCollector(young_every_s=young, full_every_s=full)
