"""The scoring worker (Faust edge): chain topic -> per-identity state -> batch scores -> alerts.

A Faust agent reads the audit chain, keeps each identity's state in a Faust table (changelog
backed, so a restarted worker recovers it), scores batches with `stream.take(n, within=s)`
through the pure step, and sends the batch's scores to the scores topic (one JSON array per batch) and every
finding (OCSF Detection Finding) to the alerts topic.

No repartition is needed: emitters key events by identity with the murmur2 partitioner (the
Java client's, and aiokafka's), so an identity's events are all in one chain partition, the
same partition its table entry is written to (use_partitioner, same partition count).

Delivery is at least once: after a crash a record may be scored twice. Findings carry a stable
uid (chain coordinates + model version) and scores are keyed the same way, so a replay is a
duplicate row, never a second alert (queries collapse them).

The chain topic is written in transactions; Faust's at-least-once consumer reads
read_uncommitted, which would score records of aborted transactions. The consumer below is
Faust's own with one change: it reads read_committed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import orjson
from faust.transport.drivers import aiokafka as faust_aiokafka

from detectors.features import IdentityState, state_from_dict, state_to_dict
from detectors.model import Detector
from pipeline.chain.record import Record
from pipeline.score.step import score_records
from pipeline.settings import Settings

log = logging.getLogger("aiaudit.score")

SCORES_PER_MESSAGE = 1000  # ~200 bytes a row


class _ReadCommittedThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # aiokafka hands it to its fetcher on start()
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class TableStates(dict[str, IdentityState]):
    """The batch's identity states, each read from the Faust table the first time the step asks."""

    def __init__(self, table: Any) -> None:
        super().__init__()
        self._table = table

    def get(self, actor: str, default: IdentityState | None = None) -> IdentityState:  # type: ignore[override]  # always returns a state: a miss reads the table
        if actor not in self:
            self[actor] = state_from_dict(self._table[actor])
        return self[actor]


class ScoreApp(faust.App):
    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def make_app(settings: Settings, detector: Detector) -> faust.App:
    k, sc = settings.kafka, settings.score
    app = ScoreApp(
        k.score_app, broker=[f"kafka://{b}" for b in k.bootstrap_servers.split(",")], store="memory://",
        topic_partitions=k.partitions, topic_replication_factor=1, web_enabled=False,
        datadir=str(settings.local.state_dir / "faust"), broker_session_timeout=k.session_timeout_ms / 1000,
        consumer_auto_offset_reset="earliest", producer_acks=-1,
        # Measured here: ~3,700 events/s with a deeper stream buffer and larger fetches, ~2,500 with
        # Faust's defaults (a Faust agent that does nothing: ~5,300 and ~3,500; bench/score_bench.py).
        stream_buffer_maxsize=32768, consumer_max_fetch_size=8 * 1_048_576,
    )
    chain = app.topic(k.chain_topic, key_serializer="raw", value_serializer="raw")
    alerts = app.topic(k.alerts_topic, key_serializer="raw", value_serializer="raw")
    scores = app.topic(k.scores_topic, key_serializer="raw", value_serializer="raw")
    # use_partitioner: a batch from take() has no current event, so the changelog partition comes from the key.
    # value_type None: the changelog holds plain JSON objects (a `dict` value_type breaks recovery:
    # Faust calls value_type.from_data() on every changelog entry).
    states = app.Table("identity-state", default=dict, partitions=k.partitions, key_type=str, value_type=None,
                       use_partitioner=True)

    @app.agent(chain)
    async def score(stream: Any) -> None:
        async for batch in stream.take(sc.batch_events, within=sc.batch_within_s):
            records = [Record.from_wire(value) for value in batch]
            local = TableStates(states)
            scored = score_records(records, local, detector, detected_at_ms=int(time.time() * 1000))
            for actor, state in local.items():  # one table write per identity per batch
                states[actor] = state_to_dict(state)
            # Scores go out as JSON arrays (per-message producer work dominates otherwise), at most
            # SCORES_PER_MESSAGE rows each, so a message stays well under the 1 MB request limit.
            rows = [s.row() for s in scored]
            for i in range(0, len(rows), SCORES_PER_MESSAGE):
                scores.send_soon(key=None, value=orjson.dumps(rows[i:i + SCORES_PER_MESSAGE]))
            for s in scored:
                if s.finding is not None:
                    alerts.send_soon(key=s.actor_id.encode(), value=orjson.dumps(s.finding))
            await app.producer.flush()  # acknowledged before this batch's offsets can be committed
            flagged = sum(1 for s in scored if s.finding)
            if flagged:
                log.info("scored %d records, %d findings", len(scored), flagged)

    return app


def run(settings: Settings, detector: Detector, *, verbose: bool = False) -> None:
    """Run the scoring worker until SIGTERM/SIGINT (Faust handles the signals)."""
    app = make_app(settings, detector)
    worker = faust.Worker(app, loglevel="INFO" if verbose else "WARN", quiet=True)
    worker.execute_from_commandline()
