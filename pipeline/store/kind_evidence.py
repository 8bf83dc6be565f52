"""The kind_evidence table: chained records of every evidence kind but AI requests (format v2).

The one owner of the table's shape (DDL in infra/clickhouse/ddl.sql): the sink writes rows built
here, the verifier reads through the SQL here and checks the typed columns against `columns_of`
the stored payload. AI requests stay in the evidence table (store/evidence.py), so an analyst's
query of requests never meets a finding or a status change. Pure: builds rows and SQL, runs nothing.
"""

from __future__ import annotations

import base64
from typing import Any

from aiaudit.pipeline.chain import record_v2
from aiaudit.pipeline.chain.formats import kind_of
from aiaudit.pipeline.chain.record import Record
from aiaudit.pipeline.contract import parse_ts
from aiaudit.pipeline.store import evidence
from aiaudit.pipeline.store.filters import Filters, where_clause

COLUMNS = ("kind", "origin", "seq", "leaf_hash", "prev", "kid", "ts", "src_topic", "src_partition", "src_offset",
           "payload", "sig")
CHECKED_COLUMNS = ("kind", "origin", "seq", "prev", "kid", "ts", "src_topic", "src_partition", "src_offset")
TIME_COLUMNS = ("ts",)
BYTES = {"payload": "bytes"}  # read the signed bytes as stored (see store/evidence.py)


def columns_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The typed columns a v2 payload implies (ts as its RFC 3339 text)."""
    return {
        "kind": obj["kind"], "origin": obj["origin"], "seq": obj["seq"], "prev": obj["prev"], "kid": obj["kid"],
        "ts": obj["ts"], "src_topic": obj["src"]["topic"], "src_partition": obj["src"]["partition"],
        "src_offset": obj["src"]["offset"],
    }


def columns_of_stored(obj: dict[str, Any]) -> dict[str, Any]:
    """The typed columns of a parsed payload of either format, for the table its format goes to."""
    return evidence.columns_of(obj) if kind_of(obj) == "request" else columns_of(obj)


def row(record: Record) -> list[Any]:
    """One row in COLUMNS order. Raises ValueError/KeyError on a payload that is not v2."""
    cols = columns_of(record_v2.parse_payload(record.payload))
    cols["ts"] = parse_ts(cols["ts"])
    cols["leaf_hash"] = record.leaf_hash
    cols["payload"] = record.payload.decode("utf-8")
    cols["sig"] = base64.b64encode(record.sig).decode("ascii")
    return [cols[name] for name in COLUMNS]


# --- the SQL that reads it (db: a validated identifier; every value a parameter) ------------


def _where(f: Filters) -> tuple[str, dict[str, Any]]:
    """What applies of a filter to kinds: the chain and the time range (the record filters pick requests)."""
    return where_clause(Filters(origin=f.origin, since=f.since, until=f.until))


def select_chain_slices(db: str, f: Filters) -> tuple[str, dict[str, Any]]:
    """(origin, first seq, last seq) of each kind's chain with records in the filter's chain and time."""
    where, params = _where(f)
    return f"SELECT origin, min(seq), max(seq) FROM {db}.kind_evidence{where} GROUP BY origin ORDER BY origin", params


def select_signed(db: str, f: Filters) -> tuple[str, dict[str, Any]]:
    """(origin, seq, payload, sig, leaf_hash) of the records in the filter's chain and time, in chain
    order (export): exact duplicates once, both records of a fork."""
    where, params = _where(f)
    return (f"SELECT origin, seq, payload, sig, leaf_hash FROM {db}.kind_evidence{where} "
            "ORDER BY origin, seq, leaf_hash LIMIT 1 BY origin, seq, leaf_hash"), params


def select_chain_rows(db: str, origin: str, first: int, last: int) -> tuple[str, dict[str, Any]]:
    """Every stored row of one chain between two seqs, duplicates included, in seq order:
    CHECKED_COLUMNS, then payload, sig, leaf_hash."""
    cols = ", ".join((*CHECKED_COLUMNS, "payload", "sig", "leaf_hash"))
    return (f"SELECT {cols} FROM {db}.kind_evidence WHERE origin = {{origin:String}} "
            "AND seq BETWEEN {first:UInt64} AND {last:UInt64} ORDER BY seq, leaf_hash",
            {"origin": origin, "first": first, "last": last})


def select_leaf_hashes(db: str, origin: str, first: int, last: int) -> tuple[str, dict[str, Any]]:
    """(seq, leaf_hash) of one chain between two seqs, each seq once (proofs)."""
    return (f"SELECT seq, any(leaf_hash) FROM {db}.kind_evidence WHERE origin = {{origin:String}} "
            "AND seq BETWEEN {first:UInt64} AND {last:UInt64} GROUP BY seq ORDER BY seq",
            {"origin": origin, "first": first, "last": last})


def select_payloads_of(db: str, kinds: list[str]) -> tuple[str, dict[str, Any]]:
    """(origin, seq, payload) of every record of `kinds`, each stored record once."""
    return (f"SELECT origin, seq, payload FROM {db}.kind_evidence WHERE kind IN {{kinds:Array(String)}} "
            "LIMIT 1 BY origin, seq, leaf_hash", {"kinds": kinds})


def select_projection_rows(db: str, table: str, columns: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """Every row of a table the sink projects from an evidence kind (`table` and `columns` from the
    fixed lists of pipeline/sink/rows.py, never from input)."""
    if not table.isidentifier() or not all(c.isidentifier() for c in columns):
        raise ValueError(f"not a table and columns: {table!r} {columns!r}")
    return f"SELECT {', '.join(columns)} FROM {db}.{table}", {}
