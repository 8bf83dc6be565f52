"""The emitter SDK: one Avro event per AI request to the requests topic.

Idempotent producer with acks=all, so the broker keeps each event once and in order per
partition. Each event is signed with the emitter's own Ed25519 key (pipeline/contract/signature.py),
registered in the emitter key set the chain worker trusts. The emitter numbers its own events
(emitter_seq) so a gap between what it sent and what the chain holds is visible (invariant 4).
Memory is bounded: at most `max_pending_events` wait for the broker; beyond that `emit` waits
for room, then fails.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from aiaudit.pipeline import contract
from aiaudit.pipeline.contract.emitter_keys import load_emitter_signer
from aiaudit.pipeline.contract.signature import SIGNATURE_FIELD, signature_member, speaks_for
from aiaudit.pipeline.errors import DeliveryFailed, InfraError, SigningKeyError
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.settings import Settings


@dataclass(frozen=True)
class Delivery:
    """A delivery report: where the broker stored the event, or why it did not."""

    event_id: str
    emitter_seq: int
    partition: int | None
    offset: int | None
    error: str | None


DeliveryCallback = Callable[[Delivery], None]


def _signer_and_id(settings: Settings, emitter_id: str | None) -> tuple[Ed25519Signer | None, str]:
    """The emitter's key and its id: the id must be one its key may sign for (the key's name, or
    the name followed by '-' or '/'); without an id, `<name>-<uuid>`, one per process."""
    if not settings.emitter.sign:
        return None, emitter_id or f"sdk-{uuid.uuid4()}"
    if settings.emitter.key_file is None:
        raise SigningKeyError("this emitter has no signing key: make one with `aiaudit keys emitter new NAME` and "
                              "set AIAUDIT_EMITTER__KEY_FILE to the file it prints (the chain worker refuses unsigned "
                              "events), or set AIAUDIT_EMITTER__SIGN=false for a chain worker that accepts them")
    signer, name = load_emitter_signer(settings.emitter.key_file)
    if emitter_id is None:
        return signer, f"{name}-{uuid.uuid4()}"
    if not speaks_for(name, emitter_id):
        raise SigningKeyError(f"emitter id {emitter_id!r} is not one the key for {name!r} may sign for: use "
                              f"{name!r}, or {name!r} followed by '-' or '/' and the instance")
    return signer, emitter_id


class Emitter:
    def __init__(
        self,
        settings: Settings,
        *,
        emitter_id: str | None = None,
        on_delivery: DeliveryCallback | None = None,
        on_error: Callable[[KafkaError], None] | None = None,
        first_seq: int = 0,
        extra_config: dict[str, object] | None = None,
    ) -> None:
        self.settings = settings
        self._signer, self.emitter_id = _signer_and_id(settings, emitter_id)
        self._topic = settings.kafka.requests_topic
        self._max_bytes = settings.chain.max_event_bytes
        self._on_delivery = on_delivery
        self._next_seq = first_seq
        self._lock = threading.Lock()
        self.delivered = 0
        self.failures: list[Delivery] = []
        self._schema_id = self._register_schema(settings.kafka.schema_registry_url)
        self._producer = Producer(
            kafka_config.producer(
                settings,
                **{
                    # Java-compatible key hashing: an identity's events land in the partition its
                    # scoring state lives in (Faust/aiokafka partition keys with murmur2 too).
                    "partitioner": "murmur2_random",
                    "linger.ms": settings.emitter.linger_ms,
                    "queue.buffering.max.messages": settings.emitter.max_pending_events,
                    "message.max.bytes": max(self._max_bytes + 4096, 1_000_000),
                    **({"error_cb": on_error} if on_error else {}),
                    **(extra_config or {}),
                }
            )
        )

    @property
    def signer_kid(self) -> str | None:
        """The kid of the emitter key this emitter signs with (None: it sends unsigned events)."""
        return self._signer.kid if self._signer is not None else None

    def _sign(self, event: dict[str, Any]) -> dict[str, str]:
        assert self._signer is not None
        return signature_member(self._signer, event)

    @staticmethod
    def _register_schema(registry_url: str | None) -> int | None:
        if not registry_url:
            return None
        from aiaudit.pipeline.contract.registry import RegistryClient

        return RegistryClient(registry_url).register(f"{contract.parsed_schema()['name']}-value", contract.schema_text())

    def check_broker(self, timeout_s: float = 5.0) -> None:
        """Raise InfraError, naming the bootstrap servers, when no broker answers within timeout_s
        (so a user learns it in seconds, not from a flush that waits for every event)."""
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise InfraError(f"no Kafka broker answers at {self.settings.kafka.bootstrap_servers} within "
                             f"{timeout_s:.0f}s ({exc.args[0].str() if exc.args else exc}): start one "
                             "(`aiaudit infra up`) or set AIAUDIT_KAFKA__BOOTSTRAP_SERVERS") from None

    def emit(self, event: dict[str, Any], *, key: str | None = None, timeout_s: float = 30.0) -> int:
        """Validate, number and send one event; returns its emitter_seq.

        `event` is an Avro datum (occurred_at an aware datetime); emitter_id and emitter_seq
        are set here. Raises InvalidEvent or OversizedEvent before sending anything, and
        DeliveryFailed when no room frees up within timeout_s.
        """
        with self._lock:
            seq = self._next_seq
            stamped = {**event, "emitter_id": self.emitter_id, "emitter_seq": seq, SIGNATURE_FIELD: None}
            if self._signer is not None:
                data, _ = contract.encode_signed(stamped, self._sign, max_bytes=self._max_bytes,
                                                 schema_id=self._schema_id)
            else:
                data = contract.encode(stamped, max_bytes=self._max_bytes, schema_id=self._schema_id)
            self._next_seq += 1
        event_id = stamped["event_id"]

        def report(err: KafkaError | None, msg: Message) -> None:
            d = Delivery(event_id, seq, msg.partition() if err is None else None,
                         msg.offset() if err is None else None, None if err is None else err.str())
            if err is None:
                self.delivered += 1
            else:
                self.failures.append(d)
            if self._on_delivery is not None:
                self._on_delivery(d)

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._producer.produce(self._topic, value=data, key=(key or stamped["actor"]["id"]).encode(), on_delivery=report)
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise DeliveryFailed(f"{self.emitter_id}: {len(self._producer)} events still wait for the broker after {timeout_s}s") from None
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise DeliveryFailed(f"{self.emitter_id}: cannot send event {event_id}: {exc}") from exc
        self._producer.poll(0)
        return seq

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports (a long-running emitter calls this from a thread)."""
        return self._producer.poll(timeout_s)

    def pending(self) -> int:
        """Events handed to the producer and not yet acknowledged or failed."""
        return len(self._producer)

    def drain(self, timeout_s: float) -> int:
        """Wait up to timeout_s for delivery reports; returns how many events are still unacknowledged."""
        return self._producer.flush(timeout_s)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait for every delivery report. Raises DeliveryFailed if any event was not acknowledged."""
        left = self._producer.flush(timeout_s)
        if left:
            raise DeliveryFailed(f"{self.emitter_id}: {left} events not acknowledged after {timeout_s}s; is the broker up?")
        if self.failures:
            first = self.failures[0]
            raise DeliveryFailed(f"{self.emitter_id}: {len(self.failures)} events failed; first: seq {first.emitter_seq}: {first.error}")

    def close(self) -> None:
        self.flush()
