"""ClickHouse, one owner per table family. Sink, query, export, verify and the trainer read and
write through these modules; no SQL against these tables is written anywhere else.

    client.py        connect (DDL applied), query, stream, insert (Inserter: again and again):
                     ClickHouse errors become StoreError
    filters.py       what an auditor samples by -> a parameterised WHERE clause (pure)
    evidence.py      the evidence table: columns, record -> row, columns_of, the SQL reading it (pure)
    dead_letters.py  rejected input kept whole (pure)
    alerts.py        scores, alerts and alert status (pure)
    promotions.py    model promotions as scorers used them
    policies.py      policy bundles; content.py: content keys with their TTL (pure)
    access.py        the access_log table (pure); access_log.py: reads recorded as they are served
"""

from __future__ import annotations

from typing import Any

__all__ = ["Inserter", "connect", "database", "ddl_statements", "insert", "open_reads", "query_rows", "stream_rows"]


def __getattr__(name: str) -> Any:
    # `store.connect(...)` etc. come from client.py, imported on first use (PEP 562) so that the pure
    # table modules above import without clickhouse-connect (tests/unit/test_layers.py holds them to it).
    if name == "open_reads":  # every read of evidence recorded (access_log.py)
        from aiaudit.pipeline.store import access_log

        return access_log.open_reads
    if name in __all__:
        from aiaudit.pipeline.store import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
