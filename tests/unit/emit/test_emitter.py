"""The emitter SDK without a broker: its bounded buffer against an address where no broker listens."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pipeline.emit.producer import Emitter
from pipeline.emit.synthetic import SyntheticEvents
from pipeline.errors import DeliveryFailed
from pipeline.settings import EmitterSettings, KafkaSettings, Settings


def event() -> dict:
    return SyntheticEvents(4, datetime(2026, 11, 28, tzinfo=timezone.utc), "reg").next_event()


def test_emitter_memory_is_bounded_when_no_broker_answers():
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"), emitter=EmitterSettings(max_pending_events=5))
    emitter = Emitter(settings, emitter_id="no-broker")
    for _ in range(5):
        emitter.emit(event())
    with pytest.raises(DeliveryFailed, match="still wait for the broker"):
        emitter.emit(event(), timeout_s=1.0)
    with pytest.raises(DeliveryFailed, match="not acknowledged"):
        emitter.flush(timeout_s=1.0)
