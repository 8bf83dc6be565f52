"""Consumed messages -> table rows (pure): which topic feeds which table, and how.

Nothing unreadable is dropped: a message that does not parse as what its topic carries becomes
a dead-letter row (reason `bad_<topic>_message`), kept whole. The row formats belong to the
table modules in pipeline/store; this module only routes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from aiaudit.pipeline import names
from aiaudit.pipeline.chain import record_v2
from aiaudit.pipeline.chain.checkpoint import TreeState
from aiaudit.pipeline.chain.kinds import KINDS
from aiaudit.pipeline.chain.record import Record
from aiaudit.pipeline.settings import KafkaSettings
from aiaudit.pipeline.store import (
    access,
    alerts,
    checkpoints,
    content,
    dead_letters,
    deliveries,
    erasures,
    evidence,
    incidents,
    key_sets,
    kind_evidence,
    policies,
    promotions,
    rules_versions,
)


class Consumed(Protocol):
    """What the sink reads of a Kafka message (confluent_kafka.Message has these)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...


Parser = Callable[[Consumed, bytes], list[list[Any]]]


@dataclass(frozen=True)
class SinkTopic:
    """One topic the sink stores, the table it goes to and the table's columns."""

    topic: str
    table: str
    columns: tuple[str, ...]


Projections = dict[str, tuple[str, Parser]]  # input topic -> (table, parser)


def sink_topics(k: KafkaSettings) -> tuple[SinkTopic, ...]:
    """Every topic the sink stores, in the order its tables are written. The evidence kinds are
    read from their chains, never from their input topics: a finding, a status change or a dead
    letter reaches the tables people read (projected_topics) only once it is chained."""
    return (
        SinkTopic(k.chain_topic, names.EVIDENCE_TABLE, evidence.COLUMNS),
        SinkTopic(k.checkpoints_topic, names.CHECKPOINTS_TABLE, checkpoints.COLUMNS),
        SinkTopic(k.scores_topic, names.SCORES_TABLE, alerts.SCORE_COLUMNS),
        SinkTopic(k.content_topic, names.CONTENT_TABLE, content.COLUMNS),
        *(t for kind in KINDS for t in (
            SinkTopic(kind.chain_topic(k), names.KIND_EVIDENCE_TABLE, kind_evidence.COLUMNS),
            SinkTopic(kind.checkpoints_topic(k), names.CHECKPOINTS_TABLE, checkpoints.COLUMNS))),
    )


def projected_topics(k: KafkaSettings) -> tuple[SinkTopic, ...]:
    """The evidence kinds' input topics whose chained messages become rows of a table people read."""
    return (
        SinkTopic(k.dead_letter_topic, names.DEAD_LETTER_TABLE, dead_letters.COLUMNS),
        SinkTopic(k.alerts_topic, names.ALERTS_TABLE, alerts.ALERT_COLUMNS),
        SinkTopic(k.incidents_topic, names.INCIDENTS_TABLE, incidents.COLUMNS),
        SinkTopic(k.alert_status_topic, names.ALERT_STATUS_TABLE, alerts.STATUS_COLUMNS),
        SinkTopic(k.policies_topic, names.POLICIES_TABLE, policies.COLUMNS),
        SinkTopic(k.model_promotions_topic, names.MODEL_PROMOTIONS_TABLE, promotions.COLUMNS),
        SinkTopic(k.rules_topic, names.RULES_TABLE, rules_versions.COLUMNS),
        SinkTopic(k.key_sets_topic, names.KEY_SETS_TABLE, key_sets.COLUMNS),
        SinkTopic(k.deliveries_topic, names.DELIVERIES_TABLE, deliveries.COLUMNS),
        SinkTopic(k.access_topic, names.ACCESS_TABLE, access.COLUMNS),
        SinkTopic(k.erasures_topic, names.ERASURES_TABLE, erasures.COLUMNS),
    )


def sink_tables(k: KafkaSettings) -> dict[str, tuple[str, ...]]:
    """Every table the sink writes and its columns, in the order they are written (each once)."""
    out: dict[str, tuple[str, ...]] = {names.DEAD_LETTER_TABLE: dead_letters.COLUMNS}
    for t in (*sink_topics(k), *projected_topics(k)):
        out.setdefault(t.table, t.columns)
    return out


@dataclass(frozen=True)
class Chained:
    """A chained message of an evidence kind, as it was consumed from its input topic (Consumed)."""

    src_topic: str
    src_partition: int
    src_offset: int
    message: record_v2.Message

    def topic(self) -> str:
        return self.src_topic

    def partition(self) -> int:
        return self.src_partition

    def offset(self) -> int:
        return self.src_offset

    def value(self) -> bytes:
        return self.message.value

    def headers(self) -> list[tuple[str, bytes]]:
        return list(self.message.headers)

    @classmethod
    def of(cls, obj: dict[str, Any]) -> "Chained":
        """From a parsed v2 payload. Raises ValueError when its event is not a message."""
        src = obj["src"]
        return cls(src["topic"], src["partition"], src["offset"], record_v2.Message.from_event(obj["event"]))


def _header(headers: list[tuple[str, bytes]] | None, name: str) -> str:
    for key, value in headers or []:
        if key == name:
            return value.decode("utf-8", "replace")
    return ""


def _dead_letter(msg: Consumed, value: bytes) -> list[list[Any]]:
    """A dead-letter-topic message: the chain worker's reason and source headers, the message whole."""
    fallback = (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
    src = dead_letters.parse_src(_header(msg.headers(), names.HDR_SRC), fallback)
    return [dead_letters.row(*src, _header(msg.headers(), names.HDR_REASON) or "unknown",
                             _header(msg.headers(), names.HDR_DETAIL), value)]


def _parsers(k: KafkaSettings) -> dict[str, Parser]:
    return {
        k.chain_topic: lambda _m, v: [evidence.row(Record.from_wire(v))],
        k.checkpoints_topic: _tree_state,
        k.scores_topic: lambda _m, v: [alerts.score_row(r) for r in orjson.loads(v)],  # one array per scored batch
        k.content_topic: lambda _m, v: [content.row(orjson.loads(v))],
        **{kind.checkpoints_topic(k): _tree_state for kind in KINDS},
    }


def _projections(k: KafkaSettings) -> Projections:
    """How a chained message of each evidence kind's input topic becomes rows of its table."""
    parse: dict[str, Parser] = {
        k.dead_letter_topic: _dead_letter,
        k.alerts_topic: lambda _m, v: [alerts.alert_row(orjson.loads(v), v)],
        k.incidents_topic: lambda _m, v: [incidents.row(orjson.loads(v), v)],
        k.alert_status_topic: lambda _m, v: [alerts.status_row_of(orjson.loads(v))],
        k.policies_topic: lambda _m, v: [policies.row(orjson.loads(v))],
        k.model_promotions_topic: lambda _m, v: [promotions.row(orjson.loads(v))],
        k.rules_topic: lambda _m, v: [rules_versions.row(orjson.loads(v))],
        k.key_sets_topic: lambda _m, v: [key_sets.row(orjson.loads(v))],
        k.deliveries_topic: lambda _m, v: [deliveries.row(orjson.loads(v))],
        k.access_topic: lambda _m, v: [access.row(orjson.loads(v))],
        k.erasures_topic: lambda _m, v: [erasures.row(orjson.loads(v))],
    }
    return {t.topic: (t.table, parse[t.topic]) for t in projected_topics(k)}


def _tree_state(_m: Consumed, v: bytes) -> list[list[Any]]:
    return [checkpoints.row(TreeState.from_wire(v))]


@dataclass
class Rows:
    """Rows per table name, ready to insert."""

    by_table: dict[str, list[list[Any]]] = field(default_factory=dict)

    def add(self, table: str, rows: Iterable[list[Any]]) -> None:
        self.by_table.setdefault(table, []).extend(rows)

    def get(self, table: str) -> list[list[Any]]:
        return self.by_table.get(table, [])


def rows_of(messages: Iterable[Consumed], k: KafkaSettings) -> Rows:
    """Sort consumed messages into table rows; an unreadable message becomes a dead-letter row. A
    record of an evidence kind's chain becomes its kind_evidence row and the row(s) its message
    makes in the table people read (project)."""
    tables = {t.topic: t.table for t in sink_topics(k)}
    parsers, projections = _parsers(k), _projections(k)
    kind_chains = {kind.chain_topic(k) for kind in KINDS}
    out = Rows()
    for msg in messages:
        value = msg.value() or b""
        topic = msg.topic() or ""
        if topic in kind_chains:
            _kind_record(msg, value, projections, out)
            continue
        table, parse = tables.get(topic), parsers.get(topic)
        if table is None or parse is None:
            out.add(names.DEAD_LETTER_TABLE, [dead_letters.row(topic, msg.partition() or 0, msg.offset() or 0,
                                                               "unexpected_topic", "not a topic the sink stores", value)])
            continue
        _parse_into(out, table, parse, msg, value)
    return out


def project(chained: Chained, k: KafkaSettings) -> Rows:
    """The rows a chained message makes in the tables people read (the sink's, and the verifier's
    expectation of them): a message that does not parse as its topic's becomes a dead-letter row."""
    out = Rows()
    _project(chained, _projections(k), out)
    return out


def _project(chained: Chained, projections: Projections, out: Rows) -> None:
    found = projections.get(chained.topic())
    if found is not None:  # None: a kind without a table (the delivery dead letters), read in its chain
        _parse_into(out, found[0], found[1], chained, chained.value())


def _kind_record(msg: Consumed, value: bytes, projections: Projections, out: Rows) -> None:
    topic = msg.topic() or ""
    try:
        record = Record.from_wire(value)
        out.add(names.KIND_EVIDENCE_TABLE, [kind_evidence.row(record)])
        chained = Chained.of(record_v2.parse_payload(record.payload))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        out.add(names.DEAD_LETTER_TABLE, [dead_letters.row(topic, msg.partition() or 0, msg.offset() or 0,
                                                           f"bad_{topic}_message", str(exc)[:500], value)])
        return
    _project(chained, projections, out)


def _parse_into(out: Rows, table: str, parse: Parser, msg: Consumed, value: bytes) -> None:
    topic = msg.topic() or ""
    try:
        out.add(table, parse(msg, value))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # Not a message we wrote: keep it whole rather than drop it.
        out.add(names.DEAD_LETTER_TABLE, [dead_letters.row(topic, msg.partition() or 0, msg.offset() or 0,
                                                           f"bad_{topic}_message", str(exc)[:500], value)])
