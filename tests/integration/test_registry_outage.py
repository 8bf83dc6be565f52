"""A schema-registry outage mid-stream: good events wait, they are never dead-lettered.

The registry is a dependency, not input: while it cannot answer, the chain worker aborts
nothing and writes nothing for the batch it cannot decode, pauses, and reads it again; once
the registry is back every event is chained exactly once and the dead-letter topic is empty.
"""

from __future__ import annotations

import time

import pytest

from aiaudit.pipeline.emit.producer import Emitter
from aiaudit.pipeline.emit.synthetic import SyntheticEvents
from aiaudit.pipeline.ops.progress import chain_lag
from tests.integration.support import T0, ChainWorkers, read_topic, wait_chained
from tests.integration.test_faults import assert_exactly_once
from tests.registry_stand_in import RegistryStandIn

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def test_registry_down_mid_stream_dead_letters_no_good_event(settings, client, tmp_path):
    registry = RegistryStandIn().start()
    settings = settings.updated(kafka={"schema_registry_url": registry.url})
    try:
        emitter = Emitter(settings, emitter_id="edge-registry")  # registers the schema while the registry is up
        gen = SyntheticEvents(11, T0, emitter.emitter_id)
        sent = []

        def emit(n: int) -> None:
            for _ in range(n):
                ev = gen.next_event()
                seq = emitter.emit(ev)
                sent.append({**ev, "emitter_id": emitter.emitter_id, "emitter_seq": seq})
            emitter.flush()

        with ChainWorkers(settings, tmp_path) as workers:
            emit(200)
            workers.start("w1")
            wait_chained(settings)
            assert registry.calls >= 2  # registered, and resolved by the worker

            registry.stop()  # the registry goes down mid-stream ...
            workers.stop_all()  # ... and the next worker starts with no cached schema
            emit(300)  # the emitter frames with the id it has; the broker acknowledges every event
            workers.start("w2")
            # The group gives w2 its partitions once w1's session has gone (up to ~10 s); then it
            # retries while the registry is down (the log says so once, then counts repeats): wait
            # for its first retry, then several more rounds.
            deadline = time.monotonic() + 45
            while "retried in" not in workers.logs() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert "retried in" in workers.logs(), workers.logs()
            time.sleep(6)
            assert read_topic(settings, settings.kafka.dead_letter_topic) == [], workers.logs()
            assert chain_lag(settings) == 300  # nothing of the second batch chained, nothing skipped

            registry.start()  # back on the same port
            wait_chained(settings, timeout_s=60)
        assert read_topic(settings, settings.kafka.dead_letter_topic) == []
        assert_exactly_once(settings, client, sent)
    finally:
        registry.stop()
