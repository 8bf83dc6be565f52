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
from aiaudit.pipeline.chain.checkpoint import TreeState
from aiaudit.pipeline.chain.kinds import KINDS
from aiaudit.pipeline.chain.record import Record
from aiaudit.pipeline.settings import KafkaSettings
from aiaudit.pipeline.store import (
    alerts,
    checkpoints,
    content,
    dead_letters,
    deliveries,
    evidence,
    incidents,
    kind_evidence,
    policies,
    promotions,
)


class Consumed(Protocol):
    """What the sink reads of a Kafka message (confluent_kafka.Message has these)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...


@dataclass(frozen=True)
class SinkTopic:
    """One topic the sink stores, the table it goes to and the table's columns."""

    topic: str
    table: str
    columns: tuple[str, ...]


def sink_topics(k: KafkaSettings) -> tuple[SinkTopic, ...]:
    """Every topic the sink stores, in the order its tables are written."""
    return (
        SinkTopic(k.chain_topic, names.EVIDENCE_TABLE, evidence.COLUMNS),
        SinkTopic(k.checkpoints_topic, names.CHECKPOINTS_TABLE, checkpoints.COLUMNS),
        SinkTopic(k.dead_letter_topic, names.DEAD_LETTER_TABLE, dead_letters.COLUMNS),
        SinkTopic(k.scores_topic, names.SCORES_TABLE, alerts.SCORE_COLUMNS),
        SinkTopic(k.alerts_topic, names.ALERTS_TABLE, alerts.ALERT_COLUMNS),
        SinkTopic(k.incidents_topic, names.INCIDENTS_TABLE, incidents.COLUMNS),
        SinkTopic(k.alert_status_topic, names.ALERT_STATUS_TABLE, alerts.STATUS_COLUMNS),
        SinkTopic(k.policies_topic, names.POLICIES_TABLE, policies.COLUMNS),
        SinkTopic(k.model_promotions_topic, names.MODEL_PROMOTIONS_TABLE, promotions.COLUMNS),
        SinkTopic(k.deliveries_topic, names.DELIVERIES_TABLE, deliveries.COLUMNS),
        SinkTopic(k.content_topic, names.CONTENT_TABLE, content.COLUMNS),
        *(t for kind in KINDS for t in (
            SinkTopic(kind.chain_topic(k), names.KIND_EVIDENCE_TABLE, kind_evidence.COLUMNS),
            SinkTopic(kind.checkpoints_topic(k), names.CHECKPOINTS_TABLE, checkpoints.COLUMNS))),
    )


def sink_tables(k: KafkaSettings) -> dict[str, tuple[str, ...]]:
    """Every table the sink writes and its columns, in the order they are written (each once)."""
    out: dict[str, tuple[str, ...]] = {}
    for t in sink_topics(k):
        out.setdefault(t.table, t.columns)
    return out


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


def _parsers(k: KafkaSettings) -> dict[str, Callable[[Consumed, bytes], list[list[Any]]]]:
    return {
        k.chain_topic: lambda _m, v: [evidence.row(Record.from_wire(v))],
        k.checkpoints_topic: lambda _m, v: [checkpoints.row(TreeState.from_wire(v))],
        k.dead_letter_topic: _dead_letter,
        k.scores_topic: lambda _m, v: [alerts.score_row(r) for r in orjson.loads(v)],  # one array per scored batch
        k.alerts_topic: lambda _m, v: [alerts.alert_row(orjson.loads(v), v)],
        k.incidents_topic: lambda _m, v: [incidents.row(orjson.loads(v), v)],
        k.alert_status_topic: lambda _m, v: [alerts.status_row_of(orjson.loads(v))],
        k.policies_topic: lambda _m, v: [policies.row(orjson.loads(v))],
        k.model_promotions_topic: lambda _m, v: [promotions.row(orjson.loads(v))],
        k.deliveries_topic: lambda _m, v: [deliveries.row(orjson.loads(v))],
        k.content_topic: lambda _m, v: [content.row(orjson.loads(v))],
        **{kind.chain_topic(k): _kind_record for kind in KINDS},
        **{kind.checkpoints_topic(k): _tree_state for kind in KINDS},
    }


def _kind_record(_m: Consumed, v: bytes) -> list[list[Any]]:
    return [kind_evidence.row(Record.from_wire(v))]


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
    """Sort consumed messages into table rows; an unreadable message becomes a dead-letter row."""
    tables = {t.topic: t.table for t in sink_topics(k)}
    parsers = _parsers(k)
    out = Rows()
    for msg in messages:
        value = msg.value() or b""
        topic = msg.topic() or ""
        table, parse = tables.get(topic), parsers.get(topic)
        if table is None or parse is None:
            out.add(names.DEAD_LETTER_TABLE, [dead_letters.row(topic, msg.partition() or 0, msg.offset() or 0,
                                                               "unexpected_topic", "not a topic the sink stores", value)])
            continue
        try:
            out.add(table, parse(msg, value))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Not a message we wrote: keep it whole rather than drop it.
            out.add(names.DEAD_LETTER_TABLE, [dead_letters.row(topic, msg.partition() or 0, msg.offset() or 0,
                                                               f"bad_{topic}_message", str(exc)[:500], value)])
    return out
