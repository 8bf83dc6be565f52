"""The tables people read (alerts, incidents, alert_status, dead_letters, deliveries,
model_promotions, policies) held to the chained records they are projected from.

The sink builds each of these rows from a chained record of an evidence kind, out of the message
the record holds byte-exact (pipeline/sink/rows.project). So the rows a table must hold are the
sink's own rows of every chained message, rebuilt here by the same code; a
stored row that no chained message makes was edited or written around the chain
(`row_not_chained`), and a chained message whose row is gone was deleted (`row_missing`).
Pure: the caller reads the records and the tables (verify/sources.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from aiaudit.pipeline import names
from aiaudit.pipeline.chain import record_v2
from aiaudit.pipeline.chain.kinds import ERASURE, KINDS
from aiaudit.pipeline.contract.erasure import shape_problem as erasure_shape
from aiaudit.pipeline.errors import Failure
from aiaudit.pipeline.settings import KafkaSettings
from aiaudit.pipeline.sink.rows import Chained, project, projected_topics, sink_tables

MAX_LISTED = 50  # failures listed per table and reason; the rest are counted in one line


def projected_tables(k: KafkaSettings) -> dict[str, tuple[str, ...]]:
    """The tables the sink fills from chained messages of the evidence kinds (dead_letters too,
    which also holds the messages it cannot read), with their columns."""
    fed = {t.table for t in projected_topics(k)} | {names.DEAD_LETTER_TABLE}
    return {table: columns for table, columns in sink_tables(k).items() if table in fed}


def normalise(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row as comparable values: times in UTC to the millisecond (the tables keep DateTime64(3)),
    arrays as tuples."""
    out: list[Any] = []
    for value in row:
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            moment = moment.astimezone(timezone.utc)
            out.append(moment.replace(microsecond=moment.microsecond // 1000 * 1000).isoformat())
        elif isinstance(value, list | tuple):
            out.append(tuple(value))
        else:
            out.append(value)
    return tuple(out)


@dataclass
class Expected:
    """The rows each projected table must hold: normalised row -> the chained record that makes it."""

    rows: dict[str, dict[tuple[Any, ...], tuple[str, int, str]]]

    def count(self) -> int:
        return sum(len(r) for r in self.rows.values())


def expected_rows(records: Iterable[tuple[str, int, dict[str, Any]]], k: KafkaSettings) -> Expected:
    """From (origin, seq, parsed v2 payload) of every chained record of the projected kinds."""
    tables = projected_tables(k)
    out: dict[str, dict[tuple[Any, ...], tuple[str, int, str]]] = {t: {} for t in tables}
    for origin, seq, obj in records:
        try:
            chained = Chained.of(obj)
        except (ValueError, TypeError, KeyError):
            continue  # not a message: the chain's own check reports the record (malformed_payload)
        for table, rows in project(chained, k).by_table.items():
            if table in out:
                for row in rows:
                    out[table].setdefault(normalise(row), (origin, seq, obj["kind"]))
    return Expected(out)


def outside_the_chains(table: str, row: tuple[Any, ...], k: KafkaSettings) -> bool:
    """A dead_letters row the sink made of an unreadable message of a topic no kind chains
    (scores, content, the chain and checkpoint topics): not evidence of a kind, not checked here."""
    if table != names.DEAD_LETTER_TABLE:
        return False
    src_topic, reason = row[0], row[3]
    made_by_sink = isinstance(reason, str) and (reason.startswith("bad_") or reason == "unexpected_topic")
    return made_by_sink and src_topic not in {kind.input_topic(k) for kind in KINDS}


@dataclass
class ProjectionCheck:
    rows: int = 0  # stored rows matched by a chained record
    outside: int = 0  # stored rows outside the chains (outside_the_chains)
    failures: list[Failure] | None = None


def compare(table: str, expected: dict[tuple[Any, ...], tuple[str, int, str]], stored: Iterable[Sequence[Any]],
            k: KafkaSettings) -> ProjectionCheck:
    """One table's stored rows against the rows its chained records make (exact duplicates of a
    redelivery collapse)."""
    check = ProjectionCheck(failures=[])
    assert check.failures is not None
    seen: set[tuple[Any, ...]] = set()
    extra: list[tuple[Any, ...]] = []
    for raw in stored:
        row = normalise(raw)
        if row in seen:
            continue
        seen.add(row)
        if row in expected:
            check.rows += 1
        elif outside_the_chains(table, row, k):
            check.outside += 1
        else:
            extra.append(row)
    for row in extra[:MAX_LISTED]:
        check.failures.append(Failure("store", None, "row_not_chained", f"{_show(row)} is made by no chained "
                                      "record: edited, or written around the chain", where=f"table {table}"))
    missing = [where for row, where in expected.items() if row not in seen]
    for origin, seq, kind in missing[:MAX_LISTED]:
        check.failures.append(Failure(origin, seq, "row_missing", f"the {kind} this record chains has no row in "
                                      f"{table}: deleted from the table"))
    for reason, left in (("row_not_chained", len(extra) - MAX_LISTED), ("row_missing", len(missing) - MAX_LISTED)):
        if left > 0:
            check.failures.append(Failure("store", None, reason, f"and {left} more row(s) like those above",
                                          where=f"table {table}"))
    return check


def _show(row: tuple[Any, ...]) -> str:
    text = ", ".join(repr(v)[:40] for v in row[:5])
    return f"row ({text}{', …' if len(row) > 5 else ''})"


MAX_ERASURES_LISTED = 1000


def erasures_of(parsed: Iterable[tuple[str, int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """What the chained erasure records say (contract/erasure.py), oldest first: each erasure, refusal
    under legal hold, hold and expiry, with the record (origin, seq) that holds it. Content they name
    is erased, not tampered with: the records and chains verify, the keys are gone."""
    out = []
    for origin, seq, obj in parsed:
        if obj.get("kind") != ERASURE:
            continue
        try:
            doc = orjson.loads(record_v2.Message.from_event(obj["event"]).value)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            continue  # not an erasure record: its chain's own checks and the projections say so
        if not isinstance(doc, dict) or erasure_shape({k: v for k, v in doc.items() if k != "signature"}) is not None:
            continue
        out.append({"at": doc["at"], "action": doc["action"], "subject": doc["subject"], "event_id": doc["event_id"],
                    "by": doc["by"], "via": doc.get("via"), "reason": doc["reason"], "key_ids": doc["key_ids"],
                    "origin": origin, "seq": seq})
    return sorted(out, key=lambda e: (e["at"], e["origin"], e["seq"]))
