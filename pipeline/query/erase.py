"""Erasure (GDPR Art. 17) that keeps every chain valid: destroy the keys content is sealed under,
and write a signed erasure record of it (pipeline/contract/erasure.py), chained like all evidence.

`erase` writes the record first (the broker must acknowledge it), then destroys the key: an
erasure is never without its evidence; if destroying fails after the record is written, the
error says so and running it again finishes it (and records that too). A subject under legal
hold is not erased: the refusal is recorded instead. Retention expiry destroys each record key
past its scope's retention, one erasure record each.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from confluent_kafka import Producer

from aiaudit.pipeline.contract.analysts import ERASURE_SIG_DOMAIN, StatusSigner
from aiaudit.pipeline.contract.erasure import erasure_message
from aiaudit.pipeline.contract.sealed import key_id
from aiaudit.pipeline.contract.subject_keys import SubjectKeys
from aiaudit.pipeline.errors import ConfigError, InfraError
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.settings import Settings


class ErasureRefused(ConfigError):
    """The subject is under legal hold: nothing was erased, the refusal was recorded."""


class _Publisher:
    """One producer for a command's erasure records: each publish waits for the broker's
    acknowledgement (the evidence first: a key is destroyed only after its record is taken)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = Producer(kafka_config.producer(settings))

    def publish(self, messages: list[dict[str, Any]]) -> None:
        failed: list[str] = []
        for m in messages:
            self.producer.produce(self.settings.kafka.erasures_topic, key=(m["subject"] or m["event_id"]).encode(),
                                  value=orjson.dumps(m),
                                  on_delivery=lambda err, _m: failed.append(str(err)) if err else None)
        if self.producer.flush(15) or failed:
            raise InfraError(f"the broker at {self.settings.kafka.bootstrap_servers} did not take the erasure record "
                             f"({failed[0] if failed else 'no answer'}): nothing was erased")


def _publish(settings: Settings, messages: list[dict[str, Any]]) -> None:
    _Publisher(settings).publish(messages)


def _signed(signer: StatusSigner, by: str | None, body: dict[str, Any]) -> dict[str, Any]:
    return signer.sign(body, by=by, domain=ERASURE_SIG_DOMAIN)


def erase(settings: Settings, keys: SubjectKeys, signer: StatusSigner, *, reason: str, subject: str | None = None,
          event_id: str | None = None, by: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Erase a subject's content (every record they are a subject of) or one record's. Returns the
    erasure record written. Raises ErasureRefused (legal hold: the refusal is recorded),
    InfraError (no broker: nothing erased), ConfigError."""
    at = now or datetime.now(timezone.utc)
    holds = keys.holds()
    held = [s for s in ([subject] if subject else keys.record_subjects(event_id or "")) if s in holds]
    if held:
        hold = holds[held[0]]
        record = _signed(signer, by, erasure_message(
            action="refused", subject=subject, event_id=event_id, at=at, key_ids=[],
            reason=f"legal hold on {held[0]} since {hold.get('at', '?')} by {hold.get('by', '?')}: "
                   f"{hold.get('reason', '')}"[:1024]))
        _publish(settings, [record])
        raise ErasureRefused(f"{held[0]} is under legal hold ({hold.get('reason', '')[:200]}); nothing was erased, "
                             "and the refusal is recorded")
    existing = keys.subject_key(subject) if subject else keys.record_key(event_id or "")
    record = _signed(signer, by, erasure_message(action="erase", subject=subject, event_id=event_id, reason=reason,
                                                 at=at, key_ids=[key_id(existing)] if existing else []))
    _publish(settings, [record])  # the evidence first: an erasure never goes unrecorded
    try:
        if subject:
            keys.erase_subject(subject)
        else:
            keys.erase_record(event_id or "")
    except OSError as exc:
        raise ConfigError(f"the erasure record is written but the key could not be destroyed ({exc}): run the same "
                          "command again to finish") from exc
    return record


def set_hold(settings: Settings, keys: SubjectKeys, signer: StatusSigner, *, subject: str, reason: str, on: bool,
             by: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Put a subject under legal hold (erasure refused) or lift it; recorded either way."""
    at = now or datetime.now(timezone.utc)
    record = _signed(signer, by, erasure_message(action="hold" if on else "release", subject=subject, reason=reason,
                                                 key_ids=[], at=at))
    _publish(settings, [record])
    keys.set_hold(subject, {"at": record["at"], "by": record["by"], "reason": reason} if on else None)
    return record


EXPIRE_BATCH = 500  # erasure records acknowledged together before their keys are destroyed


def expire(settings: Settings, keys: SubjectKeys, signer: StatusSigner, *, by: str | None = None,
           now: datetime | None = None) -> list[dict[str, Any]]:
    """Destroy every record key past its retention (content expires, records stay); one erasure
    record each. A record whose subject is under legal hold is kept, and its refusal recorded."""
    at = now or datetime.now(timezone.utc)
    holds = keys.holds()
    publisher = _Publisher(settings)
    done: list[dict[str, Any]] = []
    batch: list[tuple[str, dict[str, Any], bool]] = []  # (event id, its record, its key to destroy)

    def flush() -> None:  # the records first, then the keys they record
        publisher.publish([record for _, record, _ in batch])
        keys.erase_records([event_id for event_id, _, destroy in batch if destroy])
        done.extend(record for _, record, destroy in batch if destroy)
        batch.clear()

    for event_id, expires_at in keys.expired(at):
        held = [s for s in keys.record_subjects(event_id) if s in holds]
        existing = keys.record_key(event_id)
        if held:
            batch.append((event_id, _signed(signer, by, erasure_message(
                action="refused", event_id=event_id, key_ids=[], at=at,
                reason=f"retention expired at {expires_at}; kept: legal hold on {held[0]}")), False))
        else:
            batch.append((event_id, _signed(signer, by, erasure_message(
                action="expire", event_id=event_id, at=at, reason=f"retention expired at {expires_at}",
                key_ids=[key_id(existing)] if existing else [])), True))
        if len(batch) >= EXPIRE_BATCH:
            flush()
    if batch:
        flush()
    return done
