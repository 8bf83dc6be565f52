"""The broker dies (kill -9) mid-stream and comes back: nothing acknowledged is lost or doubled."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest

from aiaudit.pipeline import store
from aiaudit.pipeline.emit.producer import Emitter
from aiaudit.pipeline.emit.synthetic import SyntheticEvents
from tests.integration.support import T0, ChainWorkers, own_broker, wait_chained
from tests.integration.test_faults import assert_exactly_once

pytestmark = [pytest.mark.integration, pytest.mark.fault]



@pytest.fixture
def broker_to_kill(tmp_path, chdb_dir):
    with own_broker(tmp_path, chdb_dir, name="brokerdown") as running:
        yield running


def test_broker_killed_and_restarted_loses_nothing(broker_to_kill, tmp_path):
    kafka, settings = broker_to_kill

    emitter = Emitter(settings, emitter_id="edge-outage")
    gen = SyntheticEvents(21, T0, "edge-outage", step=timedelta(milliseconds=30))
    sent = []

    def emit(n: int) -> None:
        for _ in range(n):
            ev = gen.next_event()
            seq = emitter.emit(ev)
            sent.append({**ev, "emitter_seq": seq})

    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        emit(1500)
        emitter.flush()
        time.sleep(1.0)  # the chain worker is busy with these when the broker dies
        os.kill(kafka.pid(), signal.SIGKILL)
        time.sleep(1.0)
        emit(1500)  # accepted into the SDK's bounded buffer while no broker answers
        kafka.up()
        emitter.flush(timeout_s=120)  # idempotent producer: delivered once, in order
        assert emitter.delivered == 3000 and not emitter.failures
        wait_chained(settings, timeout_s=240)
    client = store.connect(settings)
    try:
        assert_exactly_once(settings, client, sent)
    finally:
        client.close()  # embedded chDB stays locked while any client in this process is open
