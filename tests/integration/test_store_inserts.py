"""The sink's inserts into embedded chDB (pipeline/store/client.py::Inserter): one insert context a
table, reused, so a batch's rows are freed when the next batch replaces them, not held by a
reference cycle until Python's cyclic collector runs (which the sink runs every few seconds)."""

from __future__ import annotations

import gc

import pytest

from aiaudit.pipeline import names, store
from aiaudit.pipeline.errors import StoreError
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import dead_letters


def _rows(n: int, start: int) -> list[list]:
    return [dead_letters.row("t", 0, start + i, "bad", "detail", b"x" * 100) for i in range(n)]


def _count(client, table: str) -> int:
    return int(client.query(f"SELECT count() FROM {table}").result_rows[0][0])


def test_batches_go_in_through_one_context_and_leave_no_cycle_holding_their_rows(settings: Settings, client):
    table = f"{store.database(settings)}.{names.DEAD_LETTER_TABLE}"
    inserter = store.Inserter(client)
    inserter.insert(table, _rows(10, 10_000), dead_letters.COLUMNS)  # first use: the library's own set-up
    was_on = gc.isenabled()
    gc.disable()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable is kept in gc.garbage to look at
    try:
        for k in range(3):
            inserter.insert(table, _rows(500, 500 * k), dead_letters.COLUMNS)
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_on:
            gc.enable()
    assert "InsertContext" not in left
    assert left.count("list") < 100, sorted(set(left))  # not a batch's 500 rows (each a list)
    assert _count(client, table) == 1510


def test_a_refused_insert_is_a_store_error_and_the_next_batch_still_goes_in(settings: Settings, client):
    table = f"{store.database(settings)}.{names.DEAD_LETTER_TABLE}"
    inserter = store.Inserter(client)
    inserter.insert(table, _rows(10, 0), dead_letters.COLUMNS)
    bad = _rows(10, 10)
    bad[3][1] = "not a partition"  # src_partition is an integer column
    with pytest.raises(StoreError, match="inserting 10 row"):
        inserter.insert(table, bad, dead_letters.COLUMNS)
    inserter.insert(table, _rows(10, 20), dead_letters.COLUMNS)
    assert _count(client, table) == 20
    with pytest.raises(StoreError):
        inserter.insert(f"{store.database(settings)}.no_such_table", _rows(1, 0), dead_letters.COLUMNS)
