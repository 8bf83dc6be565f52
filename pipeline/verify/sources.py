"""Where records to verify come from (I/O edge): the ClickHouse evidence table or an export file."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from pipeline import store
from pipeline.chain.record import format_ts
from pipeline.errors import ConfigError
from pipeline.query.filters import Filters, where_clause
from pipeline.settings import Settings
from pipeline.sink.rows import EVIDENCE_COLUMNS
from pipeline.verify.rules import StoredRecord

_CHECKED = tuple(c for c in EVIDENCE_COLUMNS if c not in ("payload", "sig", "leaf_hash"))


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime):
        # The columns are DateTime64(6, 'UTC'); some clients hand them back naive.
        return format_ts(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, tuple):
        return list(value)
    return value


def chain_slices(client: Client, settings: Settings, filters: Filters) -> list[tuple[str, int, int]]:
    """(origin, first seq, last seq) of each chain with records matching `filters`."""
    db = store.database(settings)
    where, params = where_clause(filters)
    _, rows = store.query_rows(client, f"SELECT origin, min(seq), max(seq) FROM {db}.evidence{where} GROUP BY origin ORDER BY origin", params)
    return [(str(o), int(lo), int(hi)) for o, lo, hi in rows]


def records_from_store(client: Client, settings: Settings, origin: str, first: int, last: int) -> Iterator[StoredRecord]:
    """Every stored row of one chain between two seqs, duplicates included, in (seq) order."""
    db = store.database(settings)
    cols = ", ".join((*_CHECKED, "payload", "sig", "leaf_hash"))
    sql = (f"SELECT {cols} FROM {db}.evidence WHERE origin = {{origin:String}} "
           "AND seq BETWEEN {first:UInt64} AND {last:UInt64} ORDER BY seq, leaf_hash")
    n = len(_CHECKED)
    for row in store.stream_rows(client, sql, {"origin": origin, "first": first, "last": last}):
        columns = {name: _normalise(v) for name, v in zip(_CHECKED, row[:n])}
        payload, sig, leaf = row[n], row[n + 1], row[n + 2]
        try:
            sig_bytes = base64.b64decode(sig, validate=True)
        except ValueError:
            sig_bytes = b""
        yield StoredRecord(str(columns["origin"]), int(columns["seq"]), payload.encode("utf-8"), sig_bytes, str(leaf), columns)


def records_from_export(path: Path) -> Iterator[StoredRecord]:
    """Records of an `aiaudit export` JSONL file, in file order. Raises ConfigError on a bad line."""
    try:
        fh = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the export: {exc.strerror}") from exc
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                yield StoredRecord(str(obj["origin"]), int(obj["seq"]), base64.b64decode(obj["payload"], validate=True),
                                   base64.b64decode(obj["sig"], validate=True), str(obj["leaf_hash"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path}:{lineno}: not an export record: {exc}") from exc
