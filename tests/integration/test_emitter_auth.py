"""Emitter authentication on the real broker: only events a registered emitter key signed are chained.

A writer to the requests topic who holds no emitter key forges nothing: unsigned events, events
signed by an unregistered key, events signed by one emitter's key under another emitter's id,
and signed events altered on the way are dead-lettered as unauthenticated_emitter. A key
registered while the chain worker runs is taken up without a restart, and a retired key is
refused from then on.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone

import pytest
from confluent_kafka import Producer

from aiaudit.pipeline import contract, names
from aiaudit.pipeline.contract.emitter_keys import key_set_file, new_emitter_key, retire_emitter_key
from aiaudit.pipeline.contract.signature import signature_member
from aiaudit.pipeline.emit.producer import Emitter
from aiaudit.pipeline.emit.synthetic import SyntheticEvents, forged_message
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.keys import Ed25519Signer, load_signer
from aiaudit.pipeline.query.api import find_records
from aiaudit.pipeline.store.filters import Filters
from tests.integration.support import (
    T0,
    ChainWorkers,
    emit_synthetic,
    read_topic,
    sink_until_drained,
    verify_store,
    wait_chained,
)

pytestmark = pytest.mark.integration
MAX = 1 << 20


def signed_by(signer: Ed25519Signer, emitter_id: str, seed: int, **change) -> bytes:
    event = {**SyntheticEvents(seed, T0, emitter_id).next_event(), "emitter_id": emitter_id, "emitter_seq": 0}
    data, member = contract.encode_signed(event, lambda e: signature_member(signer, e), max_bytes=MAX)
    if change:  # altered after signing: the signature travels with other content
        data = contract.encode({**event, **change, "emitter_signature": member}, max_bytes=MAX)
    return data


def test_only_events_a_registered_emitter_signed_are_chained(settings, client, tmp_path):
    set_file = key_set_file(settings)
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        _, sent = emit_synthetic(settings, 300, emitter_id="edge-auth", seed=5)

        # A second emitter registered while the worker runs: no restart needed.
        payroll_key, payroll_kid, _ = new_emitter_key(settings.signing.keys_dir / "emitters", "payroll", set_file)
        time.sleep(1.0)  # the worker reads the set again when the file changes
        payroll = settings.model_copy(update={"emitter": settings.emitter.model_copy(update={"key_file": payroll_key})})
        _, sent_payroll = emit_synthetic(payroll, 40, emitter_id="payroll-1", seed=6)

        edge, payroll_signer = load_signer(settings.emitter.key_file), load_signer(payroll_key)
        forged = {
            "unsigned": forged_message(7),
            "unregistered key": signed_by(Ed25519Signer.generate(), "edge-x", 8),
            "another emitter's key": signed_by(payroll_signer, "edge-y", 9),
            "altered after signing": signed_by(edge, "edge-z", 10, decision="allow", decision_reasons=[]),
        }
        raw = Producer(kafka_config.client(settings, **{"acks": "all", "enable.idempotence": True}))
        for data in forged.values():
            raw.produce(settings.kafka.requests_topic, value=data, key=b"forged")
        assert raw.flush(30) == 0

        # Retire payroll's key: what it signs from now on is refused, what it signed before stays.
        wait_chained(settings)
        retire_emitter_key(set_file, payroll_kid, datetime.now(timezone.utc).isoformat())
        time.sleep(1.0)
        late = Emitter(payroll, emitter_id="payroll-2")
        for _ in range(3):
            late.emit(SyntheticEvents(11, T0, "payroll-2").next_event())
        late.flush()
        wait_chained(settings)
        sink_until_drained(settings, client)

    dlq = read_topic(settings, settings.kafka.dead_letter_topic)
    reasons = Counter(dict(m.headers())[names.HDR_REASON].decode() for m in dlq)
    assert reasons == Counter({"unauthenticated_emitter": len(forged) + 3}), reasons
    details = sorted(dict(m.headers())[names.HDR_DETAIL].decode() for m in dlq)
    assert any("carries no emitter signature" in d for d in details)
    assert any("is not in the emitter key set" in d for d in details)
    assert any("registered for emitter 'payroll', not 'edge-y'" in d for d in details)
    assert any("does not verify" in d for d in details)
    assert sum("not valid at" in d for d in details) == 3  # the retired key's three late events

    rows = find_records(client, settings, Filters(limit=10_000), ("event_id", "emitter_id"))
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in sent + sent_payroll)
    report = verify_store(settings, client)  # every chained event's emitter signature checked, required
    assert report.ok, report.failures[:5]
