"""Where records to verify come from (I/O edge): the ClickHouse evidence table or an export file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from pipeline import store
from pipeline.contract import format_ts
from pipeline.query.export import read_export
from pipeline.settings import Settings
from pipeline.store import evidence
from pipeline.store.filters import Filters
from pipeline.verify.rules import StoredRecord


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime):
        # The columns are DateTime64(6, 'UTC'); some clients hand them back naive.
        return format_ts(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, tuple):
        return list(value)
    return value


def chain_slices(client: Client, settings: Settings, filters: Filters) -> list[tuple[str, int, int]]:
    """(origin, first seq, last seq) of each chain with records matching `filters`."""
    _, rows = store.query_rows(client, *evidence.select_chain_slices(store.database(settings), filters))
    return [(str(o), int(lo), int(hi)) for o, lo, hi in rows]


def records_from_store(client: Client, settings: Settings, origin: str, first: int, last: int) -> Iterator[StoredRecord]:
    """Every stored row of one chain between two seqs, duplicates included, in (seq) order."""
    n = len(evidence.CHECKED_COLUMNS)
    sql, params = evidence.select_chain_rows(store.database(settings), origin, first, last)
    for row in store.stream_rows(client, sql, params, evidence.BYTES):
        columns = {name: _normalise(v) for name, v in zip(evidence.CHECKED_COLUMNS, row[:n])}
        rec = evidence.stored_record(str(columns["origin"]), int(columns["seq"]), row[n], row[n + 1], str(row[n + 2]))
        yield StoredRecord(rec.origin, rec.seq, rec.payload, rec.sig, rec.leaf_hash, columns)


def records_from_export(path: Path) -> Iterator[StoredRecord]:
    """Records of an `aiaudit export` JSONL file, in file order. Raises ConfigError on a bad line."""
    for rec in read_export(path):
        yield StoredRecord(rec.origin, rec.seq, rec.payload, rec.sig, rec.leaf_hash)
