"""The evidence table: its columns, the row a chain record becomes, and the SQL that reads it.

The one owner of the table's shape (the DDL is infra/clickhouse/ddl.sql). The sink writes
rows built here; query, export, verify and the model trainer read through the SQL here; the
verifier checks stored typed columns against `columns_of` the stored payload.
Pure: builds rows and SQL, runs nothing.
"""

from __future__ import annotations

import base64
from typing import Any

from aiaudit.pipeline import names
from aiaudit.pipeline.chain.record import ChainId, Digest, Record, parse_payload
from aiaudit.pipeline.contract import parse_ts
from aiaudit.pipeline.store.filters import Filters, where_clause

COLUMNS = (
    "origin", "seq", "leaf_hash", "prev", "kid", "ts", "src_topic", "src_partition", "src_offset",
    "event_id", "emitter_id", "emitter_seq", "actor_type", "actor_id", "on_behalf_of", "role", "route",
    "operation", "provider", "model", "prompt_level", "prompt_categories", "response_level",
    "policy_id", "policy_version", "decision", "retention_scope", "input_tokens", "output_tokens",
    "latency_us", "payload", "sig", "decision_reasons", "trace_id",
)
SIGNED = ("payload", "sig")  # the exact signed bytes (payload UTF-8 JSON, sig base64)
QUERY_COLUMNS = tuple(c for c in COLUMNS if c not in SIGNED)  # what `aiaudit query --all-columns` shows
DEFAULT_COLUMNS = (
    "ts", "actor_id", "on_behalf_of", "role", "provider", "model", "prompt_level",
    "decision", "policy_version", "route", "origin", "seq",
)
# Read the signed bytes as stored: a String that is not UTF-8 would otherwise come back as hex text
# (clickhouse-connect's fallback), and the verifier would check other bytes than those stored.
BYTES = {"payload": "bytes"}
TIME_COLUMNS = ("ts",)  # DateTime64(6, 'UTC'): the payload says RFC 3339 text
ARRAY_COLUMNS = ("prompt_categories", "decision_reasons")  # Array(String): the payload says a JSON array
NO_PROVIDER = "none"  # what an event says when no vendor was chosen (a denied request)
# The typed columns the verifier compares with the payload (leaf_hash it recomputes instead).
CHECKED_COLUMNS = tuple(c for c in QUERY_COLUMNS if c != "leaf_hash")


def columns_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The typed columns a v1 payload implies (ts as its RFC 3339 text)."""
    ev = obj["event"]
    response = ev.get("response_classification")
    return {
        "origin": obj["origin"], "seq": obj["seq"], "prev": obj["prev"], "kid": obj["kid"], "ts": obj["ts"],
        "src_topic": obj["src"]["topic"], "src_partition": obj["src"]["partition"], "src_offset": obj["src"]["offset"],
        "event_id": ev["event_id"], "emitter_id": ev["emitter_id"], "emitter_seq": ev["emitter_seq"],
        "actor_type": ev["actor"]["type"], "actor_id": ev["actor"]["id"], "on_behalf_of": ev["actor"].get("on_behalf_of"),
        "role": ev["authz"]["role"], "route": ev["route"], "operation": ev.get("gen_ai_operation_name", ""),
        # A request refused before any vendor says provider "none" (the contract needs a string): NULL here.
        "provider": None if ev["gen_ai_provider_name"] == NO_PROVIDER else ev["gen_ai_provider_name"],
        "model": ev["gen_ai_request_model"],
        "prompt_level": ev["prompt_classification"]["level"],
        "prompt_categories": list(ev["prompt_classification"].get("categories", [])),
        "response_level": response["level"] if response else None,
        "policy_id": ev["policy_id"], "policy_version": ev["policy_version"], "decision": ev["decision"],
        "retention_scope": ev["retention_scope"], "input_tokens": ev.get("gen_ai_usage_input_tokens", 0),
        "output_tokens": ev.get("gen_ai_usage_output_tokens", 0), "latency_us": ev.get("latency_us", 0),
        "decision_reasons": list(ev.get("decision_reasons") or []), "trace_id": ev.get("trace_id"),
    }


def row(record: Record) -> list[Any]:
    """One row in COLUMNS order. Raises ValueError/KeyError on a payload that is not v1."""
    cols = columns_of(parse_payload(record.payload))
    cols["ts"] = parse_ts(cols["ts"])
    cols["leaf_hash"] = record.leaf_hash
    cols["payload"] = record.payload.decode("utf-8")
    cols["sig"] = base64.b64encode(record.sig).decode("ascii")
    return [cols[name] for name in COLUMNS]


def sig_bytes(sig: str) -> bytes:
    """A stored sig column as bytes. A sig that is not base64 becomes empty bytes, so the record
    still reaches the verifier (which reports its signature) instead of stopping a reader."""
    try:
        return base64.b64decode(sig, validate=True)
    except (ValueError, TypeError):
        return b""


def stored_record(origin: str, seq: int, payload: bytes | str, sig: str, leaf_hash: str) -> Record:
    """A stored row's signed part as a Record (payload read with BYTES; sig as sig_bytes)."""
    raw = payload if isinstance(payload, bytes) else payload.encode("utf-8")
    return Record(ChainId(origin), int(seq), raw, sig_bytes(sig), Digest(leaf_hash))


# --- the SQL that reads it (db: a validated identifier; every value a parameter) ------------


def select_records(db: str, f: Filters, columns: tuple[str, ...] = DEFAULT_COLUMNS) -> tuple[str, dict[str, Any]]:
    """Matching records, each (origin, seq) once, oldest first, at most f.limit."""
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown column(s): {', '.join(unknown)}")
    where, params = where_clause(f)
    params["limit"] = f.limit
    sql = (f"SELECT {', '.join(columns)} FROM {db}.evidence{where} "
           "ORDER BY ts, origin, seq LIMIT 1 BY origin, seq LIMIT {limit:UInt32}")
    return sql, params


def select_page(db: str, f: Filters, before: tuple[Any, str, int] | None = None,
                columns: tuple[str, ...] = DEFAULT_COLUMNS) -> tuple[str, dict[str, Any]]:
    """Matching rows, newest first, at most f.limit; with `before` (ts, origin, seq of the last
    record of the page before), the rows after it. A record stored twice (a redelivery) comes
    twice: the caller keeps each (origin, seq) once. `LIMIT 1 BY` here would make the engine sort
    every match instead of keeping the newest few (0.5 s instead of 25 ms for an actor's records
    at 1M, bench/console_bench.py)."""
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown column(s): {', '.join(unknown)}")
    where, params = where_clause(f)
    if before is not None:
        where = f"{where} AND" if where else " WHERE"
        where += (" (ts, origin, seq) < ({before_ts:DateTime64(6, 'UTC')}, {before_origin:String}, "
                  "{before_seq:UInt64})")
        params.update(before_ts=before[0], before_origin=before[1], before_seq=before[2])
    params["limit"] = f.limit
    return (f"SELECT {', '.join(columns)} FROM {db}.evidence{where} "
            "ORDER BY ts DESC, origin DESC, seq DESC LIMIT {limit:UInt32}", params)


def select_record(db: str, origin: str, seq: int) -> tuple[str, dict[str, Any]]:
    """One record's typed columns and signed payload (each stored copy of it once)."""
    return (f"SELECT {', '.join(QUERY_COLUMNS)}, payload FROM {db}.evidence "
            "WHERE origin = {origin:String} AND seq = {seq:UInt64} LIMIT 1 BY leaf_hash LIMIT 2",
            {"origin": origin, "seq": seq})


def select_signed(db: str, f: Filters) -> tuple[str, dict[str, Any]]:
    """(origin, seq, payload, sig, leaf_hash) of matching records in chain order, for export.

    Exact duplicate rows come once; two different records at one seq (a fork) both come, so a
    verifier of the export sees the fork too."""
    where, params = where_clause(f)
    return (f"SELECT origin, seq, payload, sig, leaf_hash FROM {db}.evidence{where} "
            "ORDER BY origin, seq, leaf_hash LIMIT 1 BY origin, seq, leaf_hash"), params


def select_payloads(db: str, f: Filters, origin: str | None = None, first: int = 0, last: int = 0
                    ) -> tuple[str, dict[str, Any]]:
    """The payload of matching records, each once, in time order (model training); with `origin`,
    only that chain's records from seq `first` to `last` (a page: see pipeline/score/models.py)."""
    where, params = where_clause(f)
    if origin is not None:
        where = f"{where} AND" if where else " WHERE"
        where += " origin = {page_origin:String} AND seq BETWEEN {page_first:UInt64} AND {page_last:UInt64}"
        params = {**params, "page_origin": origin, "page_first": first, "page_last": last}
    return f"SELECT payload FROM {db}.evidence{where} ORDER BY ts, origin, seq LIMIT 1 BY origin, seq", params


def select_chain_slices(db: str, f: Filters) -> tuple[str, dict[str, Any]]:
    """(origin, first seq, last seq) of each chain with matching records."""
    where, params = where_clause(f)
    return f"SELECT origin, min(seq), max(seq) FROM {db}.evidence{where} GROUP BY origin ORDER BY origin", params


def select_chain_rows(db: str, origin: str, first: int, last: int) -> tuple[str, dict[str, Any]]:
    """Every stored row of one chain between two seqs, duplicates included, in seq order:
    CHECKED_COLUMNS, then payload, sig, leaf_hash."""
    cols = ", ".join((*CHECKED_COLUMNS, "payload", "sig", "leaf_hash"))
    return (f"SELECT {cols} FROM {db}.evidence WHERE origin = {{origin:String}} "
            "AND seq BETWEEN {first:UInt64} AND {last:UInt64} ORDER BY seq, leaf_hash",
            {"origin": origin, "first": first, "last": last})


# Aggregations over every stored event (verify's whole-store checks) spill to disk past this much
# memory instead of growing with the store.
SPILL = ("SETTINGS max_bytes_before_external_group_by = 67108864, max_bytes_before_external_sort = 67108864, "
         "max_bytes_ratio_before_external_group_by = 0, max_bytes_ratio_before_external_sort = 0")
MAX_LISTED = 10_000  # failures of one kind a whole-store check lists


def _events_where(origins: list[str], window: tuple[str, str] | None) -> tuple[str, dict[str, Any]]:
    where = "origin IN {origins:Array(String)}"
    params: dict[str, Any] = {"origins": origins}
    if window is not None and window[0]:
        where += " AND ts >= parseDateTime64BestEffort({since:String}, 6, 'UTC')"
        params["since"] = window[0]
    if window is not None and window[1] != "\uffff":
        where += " AND ts < parseDateTime64BestEffort({until:String}, 6, 'UTC')"
        params["until"] = window[1]
    return where, params


def select_duplicate_events(db: str, origin: str, first: int, last: int) -> tuple[str, dict[str, Any]]:
    """Each event id chained at more than one seq of one chain between two seqs: (event_id, its seqs ascending)."""
    return (f"SELECT event_id, arraySort(groupUniqArray(seq)) AS seqs FROM {db}.evidence "
            "WHERE origin = {origin:String} AND seq BETWEEN {first:UInt64} AND {last:UInt64} "
            f"GROUP BY event_id HAVING uniqExact(seq) > 1 ORDER BY seqs[1] LIMIT {MAX_LISTED} {SPILL}",
            {"origin": origin, "first": first, "last": last})


def select_numbered_rows(db: str, origins: list[str], window: tuple[str, str] | None) -> tuple[str, dict[str, Any]]:
    """How many stored rows carry an emitter's number (how many passes the numbering check takes)."""
    where, params = _events_where(origins, window)
    return f"SELECT count() FROM {db}.evidence WHERE {where} AND emitter_id != ''", params


def select_emitter_count(db: str, origins: list[str], window: tuple[str, str] | None) -> tuple[str, dict[str, Any]]:
    where, params = _events_where(origins, window)
    return f"SELECT uniqExact(emitter_id) FROM {db}.evidence WHERE {where} AND emitter_id != '' {SPILL}", params


def select_emitter_shard(db: str, origins: list[str], window: tuple[str, str] | None, shard: int,
                         shards: int, part: int = 0, parts: int = 1) -> tuple[str, dict[str, Any]]:
    """One pass of the numbering check over the numbers that hash to `shard` of `shards`, of the
    emitters whose id hashes to `part` of `parts` (so an answer is not one row for each of millions
    of emitters): per emitter,
    (emitter_id, how many distinct numbers, lowest, highest, up to MAX_LISTED numbers two different
    events carry as [(number, one event id, another)]). The passes' numbers are disjoint, so their
    counts add up; each holds 1/shards of the store's numbers, so its memory does not grow with the
    store (one pass over 10M rows held 1.3 GB, the spill settings notwithstanding)."""
    where, params = _events_where(origins, window)
    params.update({"shard": shard, "shards": shards, "part": part, "parts": parts})
    return (f"SELECT emitter_id, count(), min(emitter_seq), max(emitter_seq), "
            f"groupArrayIf({MAX_LISTED})((emitter_seq, a, b), a != b) FROM ("
            f"SELECT emitter_id, emitter_seq, min(event_id) AS a, max(event_id) AS b FROM {db}.evidence "
            f"WHERE {where} AND emitter_id != '' AND cityHash64(emitter_seq) % {{shards:UInt32}} = {{shard:UInt32}} "
            f"AND cityHash64(emitter_id) % {{parts:UInt32}} = {{part:UInt32}} "
            f"GROUP BY emitter_id, emitter_seq) GROUP BY emitter_id ORDER BY emitter_id {SPILL}", params)


def select_next_number(db: str, origins: list[str], window: tuple[str, str] | None, emitter_id: str,
                       after: int) -> tuple[str, dict[str, Any]]:
    """(how many, the lowest) of one emitter's numbers above `after`: where its next page starts, so
    a number far above the rest (2^63, say) costs one query, not a page for every million between."""
    where, params = _events_where(origins, window)
    params.update({"emitter": emitter_id, "after": after})
    return (f"SELECT count(), min(emitter_seq) FROM {db}.evidence WHERE {where} AND emitter_id = {{emitter:String}} "
            "AND emitter_seq > {after:UInt64}", params)


def select_emitter_numbers(db: str, origins: list[str], window: tuple[str, str] | None, emitter_id: str,
                           lo: int, hi: int) -> tuple[str, dict[str, Any]]:
    """One emitter's distinct numbers between lo and hi, ascending (a page of them)."""
    where, params = _events_where(origins, window)
    params.update({"emitter": emitter_id, "lo": lo, "hi": hi})
    return (f"SELECT emitter_seq FROM {db}.evidence WHERE {where} AND emitter_id = {{emitter:String}} "
            "AND emitter_seq BETWEEN {lo:UInt64} AND {hi:UInt64} "
            f"GROUP BY emitter_seq ORDER BY emitter_seq {SPILL}", params)


def select_matching_rows(db: str, origin: str, f: Filters) -> tuple[str, dict[str, Any]]:
    """Like select_chain_rows, but the rows of one chain that `f` selects (a sample), in seq order."""
    where, params = where_clause(f)
    cols = ", ".join((*CHECKED_COLUMNS, "payload", "sig", "leaf_hash"))
    params["sample_origin"] = origin
    joiner = " AND " if where else " WHERE "
    return (f"SELECT {cols} FROM {db}.evidence{where}{joiner}origin = {{sample_origin:String}} ORDER BY seq, leaf_hash",
            params)


def select_leaf_hashes(db: str, origin: str, first: int, last: int) -> tuple[str, dict[str, Any]]:
    """(seq, leaf_hash) of one chain between two seqs, each seq once (proofs)."""
    return (f"SELECT seq, any(leaf_hash) FROM {db}.evidence WHERE origin = {{origin:String}} "
            "AND seq BETWEEN {first:UInt64} AND {last:UInt64} GROUP BY seq ORDER BY seq",
            {"origin": origin, "first": first, "last": last})


def count_records(db: str) -> tuple[str, dict[str, Any]]:
    """How many distinct (origin, seq) records the table holds."""
    return f"SELECT count() FROM (SELECT 1 FROM {db}.evidence LIMIT 1 BY origin, seq)", {}


CHAIN_TABLES = (names.EVIDENCE_TABLE, names.KIND_EVIDENCE_TABLE)  # requests (v1), every other kind (v2)


def _chain_table(table: str) -> str:
    if table not in CHAIN_TABLES:
        raise ValueError(f"not a table of chained records: {table!r}")
    return table


def select_signed_slice(db: str, origin: str, first: int, last: int, *,
                        table: str = names.EVIDENCE_TABLE) -> tuple[str, dict[str, Any]]:
    """(origin, seq, payload, sig, leaf_hash) of one chain's records from seq `first` to `last`, in
    chain order, from `table` (evidence or kind_evidence): a report's export of a period's stretch."""
    return (f"SELECT origin, seq, payload, sig, leaf_hash FROM {db}.{_chain_table(table)} WHERE origin = {{origin:String}} "
            "AND seq BETWEEN {first:UInt64} AND {last:UInt64} ORDER BY seq, leaf_hash LIMIT 1 BY origin, seq, leaf_hash",
            {"origin": origin, "first": first, "last": last})


def select_period_bounds(db: str, origin: str, first: int, last: int, since: Any, until: Any, *,
                         table: str = names.EVIDENCE_TABLE) -> tuple[str, dict[str, Any]]:
    """For one chain whose records in a period run from seq `first` to `last`: the last record
    before `first` dated before the period (its start), the first after `last` dated after it (its
    end), and the chain's last seq: (start or NULL, end or NULL, last seq)."""
    before = "seq < {first:UInt64} AND ts < {since:DateTime64(6, 'UTC')}"
    after = "seq > {last:UInt64} AND ts >= {until:DateTime64(6, 'UTC')}"
    return (f"SELECT if(countIf({before}) > 0, maxIf(seq, {before}), NULL), "
            f"if(countIf({after}) > 0, minIf(seq, {after}), NULL), max(seq) "
            f"FROM {db}.{_chain_table(table)} WHERE origin = {{origin:String}}",
            {"origin": origin, "first": first, "last": last, "since": since, "until": until})


def select_last_before(db: str, since: Any, *, table: str = names.EVIDENCE_TABLE) -> tuple[str, dict[str, Any]]:
    """(origin, the last seq dated before `since`) of each chain with a record dated before it: a
    report lists the chains that were quiet through its period (pipeline/report/pack.py)."""
    return (f"SELECT origin, max(seq) FROM {db}.{_chain_table(table)} WHERE ts < {{since:DateTime64(6, 'UTC')}} "
            "GROUP BY origin ORDER BY origin", {"since": since})
