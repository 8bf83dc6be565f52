"""`aiaudit export`: JSONL, one record per line, exactly the signed bytes (base64).

Each line is `Record.to_wire()`, the chain topic's own message form; `Record.from_wire` reads
it back (pipeline/chain/record.py owns both).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

from clickhouse_connect.driver.client import Client

from pipeline import store
from pipeline.chain.record import Record
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.store import evidence
from pipeline.store.filters import Filters


def export_records(client: Client, settings: Settings, filters: Filters, out: IO[str]) -> int:
    """Write matching records as {"origin","seq","payload","sig","leaf_hash"} lines; returns the count.

    Exact duplicate rows are written once; two different records at one seq (a fork) are both
    written, so the verifier of the export sees the fork too.
    """
    n = 0
    sql, params = evidence.select_signed(store.database(settings), filters)
    for origin, seq, payload, sig, leaf in store.stream_rows(client, sql, params, evidence.BYTES):
        out.write(evidence.stored_record(origin, seq, payload, sig, leaf).to_wire().decode("utf-8") + "\n")
        n += 1
    return n


def read_export(path: Path) -> Iterator[Record]:
    """The records of an `aiaudit export` file, in file order. Raises ConfigError naming a bad line."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the export: {exc.strerror}") from exc
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield Record.from_wire(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{lineno}: not an export record: {exc}") from exc
