"""The emitter SDK without a broker: its bounded buffer against an address where no broker listens."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from aiaudit.pipeline.contract.emitter_keys import new_emitter_key
from aiaudit.pipeline.emit.producer import Emitter
from aiaudit.pipeline.emit.synthetic import SyntheticEvents
from aiaudit.pipeline.errors import DeliveryFailed, SigningKeyError
from aiaudit.pipeline.settings import EmitterSettings, KafkaSettings, Settings


def event() -> dict:
    return SyntheticEvents(4, datetime(2026, 11, 28, tzinfo=timezone.utc), "reg").next_event()


def test_emitter_memory_is_bounded_when_no_broker_answers():
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                        emitter=EmitterSettings(max_pending_events=5, sign=False))
    emitter = Emitter(settings, emitter_id="no-broker")
    for _ in range(5):
        emitter.emit(event())
    with pytest.raises(DeliveryFailed, match="still wait for the broker"):
        emitter.emit(event(), timeout_s=1.0)
    with pytest.raises(DeliveryFailed, match="not acknowledged"):
        emitter.flush(timeout_s=1.0)


def keyed(tmp_path: Path, name: str = "billing") -> Settings:
    path, _, _ = new_emitter_key(tmp_path / "emitters", name, tmp_path / "emitters" / "jwks.json")
    return Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"), emitter=EmitterSettings(key_file=path))


def test_an_emitter_without_a_key_refuses_to_start_and_says_how_to_make_one():
    with pytest.raises(SigningKeyError, match="aiaudit keys emitter new NAME"):
        Emitter(Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1")), emitter_id="billing-1")


def test_the_emitter_id_must_be_one_its_key_speaks_for(tmp_path: Path):
    settings = keyed(tmp_path)
    assert Emitter(settings).emitter_id.startswith("billing-")
    assert Emitter(settings, emitter_id="billing/pod-7").emitter_id == "billing/pod-7"
    for other in ("payroll-1", "billingx", "billin", "billing_2"):
        with pytest.raises(SigningKeyError, match="may sign for"):
            Emitter(settings, emitter_id=other)
