"""The scoring worker (Kafka edge): chain topic -> scores, findings and identity states, exactly once.

Modelled on the chain worker. It reads the chain read_committed in large batches, runs the pure
step (pipeline/score/step.py) on each partition's batch, and writes in one Kafka transaction:
the batch's scores (JSON arrays) to the scores topic, its findings (OCSF Detection Findings) to
the alerts topic, the incident updates they make (pipeline/score/incidents.py; OCSF Incident
Findings) to the incidents topic, the changed identity states to the compacted state topic, and the input
offset. A kill -9 at any moment leaves all of a batch or none of it; the transactional id is
per chain partition, so a restarted worker or the next owner after a rebalance fences the old
writer. A partition's transaction runs on a small writer pool while the next partition is
scored and the next batch fetched; a partition's next batch waits for its previous transaction
(whose states it reads). The first batch scored with a promoted model also records that
promotion (ai.audit.model-promotions), in the same transaction.

State lives beside the chain: an identity's events are all in one chain partition (emitters
key by identity), and its state is written to the same partition of the state topic. On
assignment the worker reads the state partitions to their end (read_committed: only states of
committed batches), seeks the chain to the committed offset, and goes on; the state it holds in
memory changes only when a batch's transaction commits. The promoted model is picked up
without a restart (live.json is checked every few seconds; a promotion that does not verify
keeps the current model).

Why not Faust: see docs/design.md (its recovery race, and a per-message ceiling below
this target).
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.detectors.features import IdentityState, state_from_dict, state_to_dict
from aiaudit.detectors.model import Scorer
from aiaudit.detectors.rules import RuleConfig
from aiaudit.pipeline import metrics
from aiaudit.pipeline.chain.record import Record
from aiaudit.pipeline.collector import PacedCollector
from aiaudit.pipeline.contract import format_ts
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.kafka.io import InputLag, commit_transaction, fenced, position, read_partitions, with_data
from aiaudit.pipeline.score.finding_signature import HEADER as FINDING_HEADER
from aiaudit.pipeline.score.finding_signature import header_value, sign_finding
from aiaudit.pipeline.score.incidents import group
from aiaudit.pipeline.score.models import RULES_ONLY, Promoted
from aiaudit.pipeline.score.ocsf import incident_finding
from aiaudit.pipeline.score.step import SCORES_PER_MESSAGE, BatchStates, Scored, score_records
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import promotions, rules_versions

log = logging.getLogger("aiaudit.score")

@dataclass
class PartitionScorer:
    partition: int
    producer: Producer
    states: dict[str, IdentityState]
    next_offset: int  # the chain offset to resume from after an aborted transaction
    skipped: int = 0
    inflight: tuple[Batch, Future[KafkaError | None]] | None = None  # the batch whose transaction is committing
    since: float | None = None  # when the partition's state begins (the earliest first request it holds)


@dataclass
class Batch:
    """One partition's scored batch, waiting for its transaction."""

    part: PartitionScorer
    states: BatchStates
    scored: list[Scored]
    next_offset: int
    model: str
    incidents: list[dict[str, Any]] = field(default_factory=list)  # its incident updates (OCSF Incident Findings)
    rules: RuleConfig | None = None  # the rule configuration it was scored with
    # What this batch is the first to use (a model promotion, a rule configuration), recorded with it:
    # (topic, what the worker remembers as recorded, message key, message).
    first_use: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    handed_over: int = 0  # the order in which batches went to the writer pool


@dataclass
class Stats:
    scored: int = 0
    findings: int = 0
    transactions: int = 0
    aborted: int = 0
    unreadable: int = 0
    by_model: dict[str, int] = field(default_factory=dict)


def earliest_first_seen(states: Iterable[IdentityState]) -> float | None:
    """When a partition's state begins: the earliest first request of the identities it holds (a
    new identity is told from one a scorer that has just started has not seen, rules.check)."""
    return min((s.first_seen for s in states if s.first_seen is not None), default=None)


def scoring_order(fetched: Iterable[int], parts: Mapping[int, PartitionScorer]) -> list[int]:
    """The order in which to score a fetch's partitions: first those whose last transaction is over
    (or that have none), then those still committing, the one handed to the writers last going last,
    so its commit runs while the others are scored instead of being waited for. Each partition's own
    records stay in order (one batch a partition a fetch)."""
    def key(partition: int) -> tuple[int, int]:
        part = parts.get(partition)
        if part is None or part.inflight is None or part.inflight[1].done():
            return (0, 0)
        return (1, part.inflight[0].handed_over)
    return sorted(fetched, key=key)


class ScoreWorker:
    def __init__(self, settings: Settings, model: Callable[[], Promoted | None], *,
                 rules: RuleConfig | Callable[[], RuleConfig] | None = None,
                 instance_id: str | None = None, finding_key: Ed25519PrivateKey | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        # Signs every finding (pipeline/score/finding_signature.py): the delivery agent delivers no other.
        self.finding_key = finding_key or Ed25519PrivateKey.generate()
        self.model = model  # the promotion to score the next batch with (models.LiveModel: re-reads live.json)
        self.scorer = f"{settings.kafka.score_app}/{instance_id or socket.gethostname() + ':' + str(os.getpid())}"
        self._first_uses_sent: set[tuple[str, str]] = set()  # (topic, key) recorded, or in a transaction in flight
        self._rules_key: tuple[RuleConfig | None, str] = (None, "")  # the configuration last seen and its key
        self.clock = clock
        fixed = rules or RuleConfig()
        # the rule configuration to score the next batch with (models.LiveRules: re-reads the rules file)
        self.rules: Callable[[], RuleConfig] = fixed if callable(fixed) else (lambda: fixed)
        conf: dict[str, object] = {"fetch.min.bytes": 65536, "fetch.wait.max.ms": 100,
                                   "fetch.message.max.bytes": 8 * 1_048_576}
        if instance_id:
            conf["group.instance.id"] = instance_id
        self.consumer = Consumer(kafka_config.stage_consumer(settings, settings.kafka.score_app, **conf))
        self.parts: dict[int, PartitionScorer] = {}
        self.stats = Stats()
        self.lag = InputLag("score")
        # Transactions of different partitions commit side by side (each producer used by one thread at a time).
        self._writers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="score-txn")
        self._handed_over = 0

    # --- assignment ------------------------------------------------------------------

    def _fence(self, partition: int) -> Producer:
        k = self.settings.kafka
        producer = Producer(kafka_config.transactional_producer(
            self.settings, f"aiaudit-score:{k.chain_topic}:p{partition}", **{"linger.ms": 5}))
        producer.init_transactions(30)  # fences the partition's previous writer, aborts its open transaction
        return producer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        k = self.settings.kafka
        # Fencing waits on the transaction coordinator: fence every partition's writer at once.
        producers = dict(zip([tp.partition for tp in partitions],
                             self._writers.map(self._fence, [tp.partition for tp in partitions])))
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30)}
        states: dict[int, dict[str, IdentityState]] = {p: {} for p in producers}
        for msg in read_partitions(self.settings, k.score_state_topic, list(producers)):
            key = msg.key()
            if key is None:
                continue
            try:
                states[position(msg)[1]][key.decode()] = state_from_dict(orjson.loads(msg.value() or b"null"))
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                log.warning("state topic %s[%d]@%d unreadable (%s); that identity starts afresh",
                            k.score_state_topic, msg.partition(), msg.offset(), exc)
        assigned = []
        for p, producer in producers.items():
            start = committed.get(p, -1)
            self.parts[p] = PartitionScorer(p, producer, states[p], start if start >= 0 else OFFSET_BEGINNING,
                                            since=earliest_first_seen(states[p].values()))
            assigned.append(TopicPartition(k.chain_topic, p, start if start >= 0 else OFFSET_BEGINNING))
            log.info("chain %s[%d]: scoring from offset %s with %d identity states", k.chain_topic, p,
                     start if start >= 0 else "the beginning", len(states[p]))
        # Restored states live as long as the assignment: out of the cyclic collector's scans (it
        # would otherwise traverse every one of them again and again as batches allocate).
        gc.collect()
        gc.freeze()
        consumer.assign(assigned)
        consumer.resume(assigned)  # a partition paused while fenced stays paused across assignments otherwise

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            part = self.parts.get(tp.partition)
            if part is not None:
                self._settle(part)  # its last transaction ends before the partition is given up
                part.producer.flush(10)
            self.parts.pop(tp.partition, None)
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

    def _score(self, part: PartitionScorer, msgs: list[Message], detector: Scorer, now_ms: int) -> Batch:
        local = BatchStates(part.states)  # the batch's changes; the held states change only on commit
        rules = self.rules()
        scored = score_records(self._records(part, msgs), local, detector, detected_at_ms=now_ms, rules=rules,
                               skip_unreadable=True, scorer_since=part.since)
        incidents = [incident_finding(incident=u.incident, activity=u.activity, page=u.page, last=u.last.finding or {},
                                      detected_at_ms=now_ms, rules_version=rules.version, model_version=detector.version)
                     for u in group(scored, local)]
        return Batch(part, local, scored, position(msgs[-1])[2] + 1, detector.version, incidents, rules)

    def _write(self, batch: Batch, group: object) -> KafkaError | None:
        """One partition's transaction: scores, findings, changed states and the input offset.
        Runs on the writer pool (librdkafka waits without the GIL, so partitions commit together)."""
        k, part = self.settings.kafka, batch.part
        producer = part.producer
        try:
            producer.begin_transaction()
            rows = [s.row() for s in batch.scored]
            for i in range(0, len(rows), SCORES_PER_MESSAGE):
                producer.produce(k.scores_topic, value=orjson.dumps(rows[i:i + SCORES_PER_MESSAGE]))
            for s in batch.scored:
                if s.finding is not None:
                    signature = header_value(sign_finding(s.finding, self.finding_key))
                    producer.produce(k.alerts_topic, key=s.actor_id.encode(), value=orjson.dumps(s.finding),
                                     headers=[(FINDING_HEADER, signature)])
            org = self.settings.chain.org.encode()  # an organisation's incidents in one partition (its pager)
            for incident in batch.incidents:
                signature = header_value(sign_finding(incident, self.finding_key))
                producer.produce(k.incidents_topic, key=org, value=orjson.dumps(incident),
                                 headers=[(FINDING_HEADER, signature)])
            for topic, _, key, message in batch.first_use:
                producer.produce(topic, key=key.encode(), value=orjson.dumps(message))
            for actor, state in batch.states.changed().items():
                producer.produce(k.score_state_topic, key=actor.encode(), value=orjson.dumps(state_to_dict(state)),
                                 partition=part.partition)
            producer.send_offsets_to_transaction([TopicPartition(k.chain_topic, part.partition, batch.next_offset)],
                                                 group, 30)
            commit_transaction(producer)
            return None
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if not fenced(err) and err.txn_requires_abort():
                try:
                    producer.abort_transaction(30)
                except KafkaException as again:
                    log.warning("chain %s[%d]: abort failed too (%s)", k.chain_topic, part.partition, again)
            return err

    def _process(self, by_partition: dict[int, list[Message]]) -> None:
        """Score each partition's batch here and hand its transaction to the writer pool. A partition's
        previous transaction is settled first (its states are the ones this batch reads), so a commit
        overlaps the next fetch and the other partitions' scoring, never the same partition's."""
        promoted = self.model()
        now_ms = int(self.clock() * 1000)
        group = self.consumer.consumer_group_metadata()
        for p in scoring_order(by_partition, self.parts):
            msgs, part = by_partition[p], self.parts.get(p)
            if part is None or not self._settle(part):
                continue  # revoked, fenced, or rewound to its last commit: these are fetched again
            started = time.perf_counter()
            batch = self._score(part, msgs, promoted.detector if promoted is not None else RULES_ONLY, now_ms)
            metrics.BATCH_SECONDS.labels("score", "request").observe(time.perf_counter() - started)
            self._first_use(batch, promoted, format_ts(datetime.fromtimestamp(now_ms / 1000, timezone.utc)))
            self._handed_over += 1
            batch.handed_over = self._handed_over
            part.inflight = (batch, self._writers.submit(self._write, batch, group))

    def _first_use(self, batch: Batch, promoted: Promoted | None, now: str) -> None:
        """The first batch scored with a model promotion or a rule configuration records it (in its
        transaction: a configuration is on record before any finding raised under it is)."""
        k = self.settings.kafka
        if promoted is not None and (k.model_promotions_topic, "\x00".join(promoted.key)) not in self._first_uses_sent:
            seen = "\x00".join(promoted.key)
            self._first_uses_sent.add((k.model_promotions_topic, seen))
            batch.first_use.append((k.model_promotions_topic, seen, promoted.key[0], promotions.message(
                promoted.live, promoted.live_json, first_scored_at=now, scorer=self.scorer)))
        rules = batch.rules
        if rules is not None:
            if self._rules_key[0] is not rules:
                self._rules_key = (rules, rules_versions.key(rules))
            seen = self._rules_key[1]
            if (k.rules_topic, seen) not in self._first_uses_sent:
                self._first_uses_sent.add((k.rules_topic, seen))
                batch.first_use.append((k.rules_topic, seen, rules.version,
                                        rules_versions.message(rules, first_scored_at=now, scorer=self.scorer)))

    def _settle(self, part: PartitionScorer) -> bool:
        """Wait for the partition's transaction in flight and take its outcome: True if the partition
        goes on from where that batch ended, False if it was rewound (aborted) or given up (fenced)."""
        if part.inflight is None:
            return True
        (batch, done), part.inflight = part.inflight, None
        err, k = done.result(), self.settings.kafka
        if err is not None:  # not recorded: the next batch records them
            self._first_uses_sent.difference_update((topic, seen) for topic, seen, _, _ in batch.first_use)
        if err is None:
            part.states.update(batch.states.changed())
            if part.since is None:
                part.since = earliest_first_seen(batch.states.changed().values())
            part.next_offset = batch.next_offset
            self.stats.scored += len(batch.scored)
            self.stats.findings += sum(1 for s in batch.scored if s.finding is not None)
            metrics.EVENTS_IN.labels("score", "request").inc(len(batch.scored))
            for s in batch.scored:
                if s.finding is not None:
                    metrics.FINDINGS.labels(metrics.severity_label(s.finding.get("severity"))).inc()
            for incident in batch.incidents:
                metrics.INCIDENTS.labels(metrics.severity_label(incident.get("severity"))).inc()
            self.stats.transactions += 1
            self.stats.by_model[batch.model] = self.stats.by_model.get(batch.model, 0) + len(batch.scored)
            return True
        if fenced(err):
            log.warning("chain %s[%d]: fenced by another scoring worker (%s); giving the partition up",
                        k.chain_topic, part.partition, err)
            self.parts.pop(part.partition, None)
            self.consumer.pause([TopicPartition(k.chain_topic, part.partition)])
            return False
        log.warning("scores of %s[%d]: transaction aborted (%s); retrying from offset %s", k.chain_topic,
                    part.partition, err, part.next_offset)
        self.stats.aborted += 1
        metrics.TRANSACTION_ABORTS.labels("score", "request").inc()
        self.consumer.seek(TopicPartition(k.chain_topic, part.partition, part.next_offset))
        return False

    def _settle_all(self) -> None:
        for part in list(self.parts.values()):
            self._settle(part)

    def run(self, stop: threading.Event, *, progress_every_s: float = 5.0) -> None:
        """Score until `stop` is set. Raises InfraError on a fatal consumer error."""
        k, sc = self.settings.kafka, self.settings.score
        kafka_config.warn_if_unreachable(self.settings, self.consumer, "scoring worker")
        self.consumer.subscribe([k.chain_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        last_report, last_scored = time.monotonic(), 0
        # The cyclic collector paused within batches (pipeline/collector.py): the held identity
        # states can be millions of objects, so a full collection runs only every few minutes.
        with PacedCollector() as collector:
            try:
                while not stop.is_set():
                    msgs = self.consumer.consume(sc.batch_events, timeout=sc.batch_within_s)
                    by_partition: dict[int, list[Message]] = {}
                    for msg in with_data(msgs, self.settings, "scoring worker"):
                        by_partition.setdefault(position(msg)[1], []).append(msg)
                    if by_partition:
                        self._process(by_partition)
                    else:
                        self._settle_all()  # idle: take the outcomes of the last transactions
                    self.lag.update(self.consumer)
                    collector.tick()
                    now = time.monotonic()
                    if now - last_report >= progress_every_s:
                        rate = (self.stats.scored - last_scored) / (now - last_report)
                        if self.stats.scored != last_scored:
                            log.info("scored %d (%.0f/s), findings %d, partitions %s", self.stats.scored, rate,
                                     self.stats.findings, sorted(self.parts))
                        last_report, last_scored = now, self.stats.scored
            finally:
                self._settle_all()
                self.consumer.close()
                for part in self.parts.values():
                    part.producer.flush(10)
                self._writers.shutdown()

