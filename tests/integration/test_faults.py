"""Fault injection on the real pipeline: kill -9, rebalance, a frozen zombie writer, a sink crash."""

from __future__ import annotations

import random
import signal
import threading
import time
from typing import Any

import pytest
from confluent_kafka import Producer

from aiaudit.pipeline.chain.record import chain_origin
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.kafka.io import committed_offsets
from aiaudit.pipeline.query.api import find_records
from aiaudit.pipeline.sink.worker import SinkWorker
from aiaudit.pipeline.store.filters import Filters
from tests.integration.support import (
    SOAK,
    ChainWorkers,
    emit_synthetic,
    read_topic,
    sink_until_drained,
    verify_store,
    wait_chained,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def emit_in_background(settings, n: int, emitter_id: str, seed: int) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        out["sent"] = emit_synthetic(settings, n, emitter_id=emitter_id, seed=seed)[1]

    t = threading.Thread(target=run)
    t.start()
    return t, out


def assert_exactly_once(settings, client, sent: list[dict[str, Any]]) -> None:
    """Every acknowledged event is in the chain exactly once; every chain verifies."""
    chain = read_topic(settings, settings.kafka.chain_topic)
    assert len(chain) == len(sent), f"chain topic holds {len(chain)} committed records for {len(sent)} events"
    sink_until_drained(settings, client)
    rows = find_records(client, settings, Filters(limit=1_000_000), ("event_id",))
    ids = [r["event_id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(sent)
    assert set(ids) == {e["event_id"] for e in sent}
    report = verify_store(settings, client)
    assert report.ok, report.text()[-3000:]
    assert report.kinds()["request"]["records"] == len(sent)  # beside them, the key set checked with (kind key_set)


def chained_so_far(settings) -> int:
    k = settings.kafka
    return sum(max(o, 0) for o in committed_offsets(settings, k.chain_group, k.requests_topic, k.partitions).values())


def test_kill9_chain_worker_at_random_moments(settings, client, tmp_path):
    rng = random.Random(20261128)
    kills = 0
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        t, out = emit_in_background(settings, 30_000 if SOAK else 12_000, "edge-kill", seed=5)
        while kills < (5 if SOAK else 2):
            # Kill while it works: once it has committed something since its (re)start.
            before = chained_so_far(settings)
            deadline = time.monotonic() + 60
            while chained_so_far(settings) == before and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(rng.uniform(0.0, 0.8))
            workers.kill9("w1")
            kills += 1
            workers.start("w1")
        t.join(300)
        wait_chained(settings)
    uncommitted = read_topic(settings, settings.kafka.chain_topic, read_committed=False)
    print(f"{kills} kills; chain topic holds {len(uncommitted)} records including aborted transactions")
    assert_exactly_once(settings, client, out["sent"])


def test_writer_killed_inside_an_open_transaction(settings, client, tmp_path):
    """A writer that died with records on the broker in an open transaction: the next writer
    of that chain fences it, its records are aborted and never reach the chain's readers."""
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        _, sent = emit_synthetic(settings, 1000, emitter_id="edge-txn-1", seed=3)
        wait_chained(settings)
    origin = chain_origin(settings.chain.org, settings.chain.env, settings.kafka.requests_topic, 0, settings.chain.generation)
    dead = Producer(kafka_config.client(settings, **{"transactional.id": f"aiaudit-chain:{origin}"}))
    dead.init_transactions(30)
    dead.begin_transaction()
    for i in range(50):
        dead.produce(settings.kafka.chain_topic, value=b'{"half":"written"}', key=origin.encode(), partition=0)
    assert dead.flush(30) == 0  # on the broker, inside a transaction that will never commit
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w2")
        _, more = emit_synthetic(settings, 1000, emitter_id="edge-txn-2", seed=4)
        wait_chained(settings)
    uncommitted = read_topic(settings, settings.kafka.chain_topic, read_committed=False)
    assert len(uncommitted) == len(sent) + len(more) + 50  # the half-written records are there ...
    assert_exactly_once(settings, client, sent + more)  # ... and aborted: no reader sees them


def test_two_workers_with_rebalances_never_fork(settings, client, tmp_path):
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        t, out = emit_in_background(settings, 20_000, "edge-rebalance", seed=6)
        time.sleep(1.5)
        workers.start("w2")  # rebalance: partitions split between w1 and w2
        time.sleep(3.0)
        workers.kill9("w1")  # w1's chains move to w2 after the session timeout
        time.sleep(2.0)
        workers.start("w3")  # and another rebalance while w1's partitions are in flight
        t.join(300)
        wait_chained(settings)
    assert_exactly_once(settings, client, out["sent"])


def test_frozen_zombie_writer_is_fenced(settings, client, tmp_path):
    with ChainWorkers(settings, tmp_path) as workers:
        zombie = workers.start("w1")
        _, sent = emit_synthetic(settings, 2000, emitter_id="edge-zombie-1", seed=7)
        wait_chained(settings)
        zombie.send_signal(signal.SIGSTOP)  # frozen mid-life: still believes it owns every chain
        t, out = emit_in_background(settings, 4000, "edge-zombie-2", seed=8)
        workers.start("w2")  # takes the chains over once w1's session expires, fencing its transactional ids
        t.join(300)
        wait_chained(settings)
        zombie.send_signal(signal.SIGCONT)  # the zombie wakes up and tries to write
        _, late = emit_synthetic(settings, 1000, emitter_id="edge-zombie-3", seed=9)
        wait_chained(settings)
    assert_exactly_once(settings, client, sent + out["sent"] + late)


class CommitFails:
    """Proxy of a real consumer whose first commit raises: a crash between insert and commit."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer

    def commit(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected crash between the ClickHouse insert and the offset commit")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def test_sink_crash_between_insert_and_commit_duplicates_no_result(settings, client, tmp_path):
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        _, sent = emit_synthetic(settings, 3000, emitter_id="edge-sink", seed=10)
        wait_chained(settings)
    crashing = SinkWorker(settings, client)
    crashing.consumer = CommitFails(crashing.consumer)
    with pytest.raises(RuntimeError, match="injected crash"):
        crashing.run(threading.Event())
    db = settings.clickhouse.database
    first = client.query(f"SELECT count() FROM {db}.evidence").result_rows[0][0]
    assert first > 0  # rows were inserted, offsets were not committed
    sink_until_drained(settings, client)  # a restarted sink redelivers that batch
    total = client.query(f"SELECT count() FROM {db}.evidence").result_rows[0][0]
    assert total == len(sent) + first  # the table holds the redelivered rows twice ...
    rows = find_records(client, settings, Filters(limit=1_000_000), ("event_id",))
    assert len(rows) == len({r["event_id"] for r in rows}) == len(sent)  # ... query results never do
    report = verify_store(settings, client)
    assert report.ok and sum(c.duplicates for c in report.chains) == first
