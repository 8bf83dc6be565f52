"""The scoring worker (Kafka edge): chain topic -> scores, findings and identity states, exactly once.

Modelled on the chain worker. It reads the chain read_committed in large batches, runs the pure
step (pipeline/score/step.py) on each partition's batch, and writes in one Kafka transaction:
the batch's scores (JSON arrays) to the scores topic, its findings (OCSF Detection Findings) to
the alerts topic, the changed identity states to the compacted state topic, and the input
offset. A kill -9 at any moment leaves all of a batch or none of it; the transactional id is
per chain partition, so a restarted worker or the next owner after a rebalance fences the old
writer.

State lives beside the chain: an identity's events are all in one chain partition (emitters
key by identity), and its state is written to the same partition of the state topic. On
assignment the worker reads the state partitions to their end (read_committed: only states of
committed batches), seeks the chain to the committed offset, and goes on; the state it holds in
memory changes only when a batch's transaction commits. The promoted model is picked up
without a restart (live.json is checked every few seconds; a promotion that does not verify
keeps the current model).

Why not Faust: see README "Design notes" (its recovery race, and a per-message ceiling below
this target).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from detectors.features import IdentityState, state_from_dict, state_to_dict
from detectors.model import Detector
from pipeline.chain.record import Record
from pipeline.errors import InfraError
from pipeline.kafka import config as kafka_config
from pipeline.kafka.io import commit_transaction, fenced, read_partitions
from pipeline.score.step import SCORES_PER_MESSAGE, BatchStates, score_records
from pipeline.settings import Settings

log = logging.getLogger("aiaudit.score")


@dataclass
class PartitionScorer:
    partition: int
    producer: Producer
    states: dict[str, IdentityState]
    next_offset: int  # the chain offset to resume from after an aborted transaction
    skipped: int = 0


@dataclass
class Stats:
    scored: int = 0
    findings: int = 0
    transactions: int = 0
    aborted: int = 0
    unreadable: int = 0
    by_model: dict[str, int] = field(default_factory=dict)


class ScoreWorker:
    def __init__(self, settings: Settings, model: Callable[[], Detector], *, instance_id: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.model = model  # the detector to score the next batch with (models.LiveModel: re-reads promotions)
        self.clock = clock
        conf: dict[str, object] = {"fetch.min.bytes": 65536, "fetch.wait.max.ms": 100,
                                   "fetch.message.max.bytes": 8 * 1_048_576}
        if instance_id:
            conf["group.instance.id"] = instance_id
        self.consumer = Consumer(kafka_config.stage_consumer(settings, settings.kafka.score_app, **conf))
        self.parts: dict[int, PartitionScorer] = {}
        self.stats = Stats()

    # --- assignment ------------------------------------------------------------------

    def _fence(self, partition: int) -> Producer:
        k = self.settings.kafka
        producer = Producer(kafka_config.transactional_producer(
            self.settings, f"aiaudit-score:{k.chain_topic}:p{partition}", **{"linger.ms": 5}))
        producer.init_transactions(30)  # fences the partition's previous writer, aborts its open transaction
        return producer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        k = self.settings.kafka
        producers = {tp.partition: self._fence(tp.partition) for tp in partitions}
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30)}
        states: dict[int, dict[str, IdentityState]] = {p: {} for p in producers}
        count = 0
        for msg in read_partitions(self.settings, k.score_state_topic, list(producers)):
            if msg.key() is None:
                continue
            try:
                states[msg.partition()][msg.key().decode()] = state_from_dict(orjson.loads(msg.value() or b"null"))
                count += 1
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                log.warning("state topic %s[%d]@%d unreadable (%s); that identity starts afresh",
                            k.score_state_topic, msg.partition(), msg.offset(), exc)
        assigned = []
        for p, producer in producers.items():
            start = committed.get(p, -1)
            self.parts[p] = PartitionScorer(p, producer, states[p], start if start >= 0 else OFFSET_BEGINNING)
            assigned.append(TopicPartition(k.chain_topic, p, start if start >= 0 else OFFSET_BEGINNING))
            log.info("chain %s[%d]: scoring from offset %s with %d identity states", k.chain_topic, p,
                     start if start >= 0 else "the beginning", len(states[p]))
        consumer.assign(assigned)
        consumer.resume(assigned)  # a partition paused while fenced stays paused across assignments otherwise

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            part = self.parts.pop(tp.partition, None)
            if part is not None:
                part.producer.flush(10)
        consumer.unassign()

    # --- processing ------------------------------------------------------------------

    def _records(self, part: PartitionScorer, msgs: list[Message]) -> list[Record]:
        records = []
        for msg in msgs:
            try:
                records.append(Record.from_wire(msg.value() or b""))
            except ValueError as exc:  # only the chain worker writes the chain; `verify` locates tampering
                part.skipped += 1
                self.stats.unreadable += 1
                log.warning("chain %s[%d]@%d is not a record (%s); not scored", msg.topic(), msg.partition(),
                            msg.offset(), exc)
        return records

    def _process(self, part: PartitionScorer, msgs: list[Message]) -> None:
        k = self.settings.kafka
        detector = self.model()
        local = BatchStates(part.states)  # the batch's changes; the held states change only on commit
        scored = score_records(self._records(part, msgs), local, detector,
                               detected_at_ms=int(self.clock() * 1000), skip_unreadable=True)
        next_offset = msgs[-1].offset() + 1
        producer = part.producer
        try:
            producer.begin_transaction()
            rows = [s.row() for s in scored]
            for i in range(0, len(rows), SCORES_PER_MESSAGE):
                producer.produce(k.scores_topic, value=orjson.dumps(rows[i:i + SCORES_PER_MESSAGE]))
            for s in scored:
                if s.finding is not None:
                    producer.produce(k.alerts_topic, key=s.actor_id.encode(), value=orjson.dumps(s.finding))
            for actor, state in local.changed().items():
                producer.produce(k.score_state_topic, key=actor.encode(), value=orjson.dumps(state_to_dict(state)),
                                 partition=part.partition)
            producer.send_offsets_to_transaction([TopicPartition(k.chain_topic, part.partition, next_offset)],
                                                 self.consumer.consumer_group_metadata(), 30)
            commit_transaction(producer)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if self._gave_up_if_fenced(part, err):
                return
            log.warning("scores of %s[%d]: transaction aborted (%s); retrying from offset %s", k.chain_topic,
                        part.partition, err, part.next_offset)
            if err.txn_requires_abort():
                producer.abort_transaction(30)
            self.stats.aborted += 1
            self.consumer.seek(TopicPartition(k.chain_topic, part.partition, part.next_offset))
            return
        part.states.update(local.changed())
        part.next_offset = next_offset
        self.stats.scored += len(scored)
        self.stats.findings += sum(1 for s in scored if s.finding is not None)
        self.stats.transactions += 1
        self.stats.by_model[detector.version] = self.stats.by_model.get(detector.version, 0) + len(scored)

    def _gave_up_if_fenced(self, part: PartitionScorer, err: KafkaError) -> bool:
        if not fenced(err):
            return False
        log.warning("chain %s[%d]: fenced by another scoring worker (%s); giving the partition up",
                    self.settings.kafka.chain_topic, part.partition, err)
        self.parts.pop(part.partition, None)
        self.consumer.pause([TopicPartition(self.settings.kafka.chain_topic, part.partition)])
        return True


    def run(self, stop: threading.Event, *, progress_every_s: float = 5.0) -> None:
        """Score until `stop` is set. Raises InfraError on a fatal consumer error."""
        k, sc = self.settings.kafka, self.settings.score
        kafka_config.warn_if_unreachable(self.settings, self.consumer, "scoring worker")
        self.consumer.subscribe([k.chain_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        last_report, last_scored = time.monotonic(), 0
        try:
            while not stop.is_set():
                msgs = self.consumer.consume(sc.batch_events, timeout=sc.batch_within_s)
                by_partition: dict[int, list[Message]] = {}
                for msg in msgs:
                    if msg.error():
                        if msg.error().fatal():
                            raise InfraError(f"scoring consumer: {msg.error()}")
                        kafka_config.LOG.warning(kafka_config.consumer_problem(self.settings, "scoring worker",
                                                                               msg.error()))
                        continue
                    by_partition.setdefault(msg.partition(), []).append(msg)
                for p, batch in by_partition.items():
                    part = self.parts.get(p)
                    if part is not None:
                        self._process(part, batch)
                now = time.monotonic()
                if now - last_report >= progress_every_s:
                    rate = (self.stats.scored - last_scored) / (now - last_report)
                    if self.stats.scored != last_scored:
                        log.info("scored %d (%.0f/s), findings %d, partitions %s", self.stats.scored, rate,
                                 self.stats.findings, sorted(self.parts))
                    last_report, last_scored = now, self.stats.scored
        finally:
            self.consumer.close()
            for part in self.parts.values():
                part.producer.flush(10)

