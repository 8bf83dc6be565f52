"""The chain step (pure): a batch of input messages of one partition -> records and dead letters.

Input at or below the head's last chained offset is skipped (idempotent resume); bad input
becomes a dead letter with its reason and never stops the batch; every good event becomes
the next record. The caller writes records, dead letters and the input offset atomically.
A dependency that is down (DependencyUnavailable from the decoder, e.g. the schema registry)
is not bad input: it propagates, and the caller retries the whole batch later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiaudit.pipeline.chain import record_v2
from aiaudit.pipeline.chain.record import ChainHead, Record, Signer, Source, build_record
from aiaudit.pipeline.contract import format_ts
from aiaudit.pipeline.errors import EventRejected, NotCanonicalizable


@dataclass(frozen=True)
class InputMessage:
    value: bytes
    key: bytes | None
    src: Source
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0  # the message's Kafka timestamp (0 when the broker gave none)


@dataclass(frozen=True)
class DeadLetter:
    message: InputMessage
    reason: str
    detail: str


@dataclass
class StepResult:
    head: ChainHead
    records: list[Record] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    skipped: int = 0


Decoder = Callable[[bytes], dict[str, Any]]


def chain_batch(head: ChainHead, signer: Signer, messages: Sequence[InputMessage], decode: Decoder) -> StepResult:
    """Append every good event of `messages` (one partition, offset order) to the chain at `head`."""
    result = StepResult(head=head)
    for msg in messages:
        if msg.src.offset <= result.head.last_src_offset:
            result.skipped += 1
            continue
        try:
            event = decode(msg.value)
        except EventRejected as exc:
            result.dead_letters.append(DeadLetter(msg, exc.reason, exc.detail[:1000]))
            continue
        try:
            record = build_record(result.head, signer, event["occurred_at"], msg.src, event)
        except NotCanonicalizable as exc:  # decodes, yet has no language-neutral JSON form
            result.dead_letters.append(DeadLetter(msg, "invalid", f"event cannot be canonicalized: {exc}"[:1000]))
            continue
        result.records.append(record)
        result.head = record.next_head(msg.src.offset)
    return result


def kafka_time(timestamp_ms: int) -> str:
    """A Kafka timestamp as a record's ts (RFC 3339 UTC, microseconds)."""
    return format_ts(datetime.fromtimestamp(max(timestamp_ms, 0) / 1000, tz=timezone.utc))


Admit = Callable[[InputMessage], "tuple[str, str] | None"]  # (reason, detail) when a message is refused


def chain_messages(head: ChainHead, signer: Signer, kind: str, messages: Sequence[InputMessage],
                   admit: Admit | None = None) -> StepResult:
    """Append every message of `messages` (one partition, offset order) to the chain of evidence
    `kind` at `head`, byte-exact (format v2). Nothing is refused unless `admit` says why (a status
    change no analyst signed): a message written to an evidence topic is evidence that it was
    written, whatever it holds; a refused one is a dead letter, chained as such."""
    result = StepResult(head=head)
    for msg in messages:
        if msg.src.offset <= result.head.last_src_offset:
            result.skipped += 1
            continue
        refused = admit(msg) if admit is not None else None
        if refused is not None:
            result.dead_letters.append(DeadLetter(msg, refused[0], refused[1][:1000]))
            continue
        record = record_v2.build_record(result.head, signer, kind, kafka_time(msg.timestamp_ms), msg.src,
                                        record_v2.Message(msg.value, msg.key, msg.headers))
        result.records.append(record)
        result.head = record.next_head(msg.src.offset)
    return result
