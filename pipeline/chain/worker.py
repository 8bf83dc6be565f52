"""The chain worker (Kafka edge): requests topic -> signed, hash-chained audit chain topic.

One chain per input partition, written to the same partition of the chain topic. Each batch
of a partition is one Kafka transaction holding its records, its dead letters and the input
offset, so a kill -9 at any moment leaves either all of a batch or none of it. The
transactional id is the chain's origin: a new writer of a chain (a restart, or another worker
after a rebalance) fences the old one, and its open transaction is aborted, so no zombie can
fork the chain. On assignment the worker reads the chain head (seq, prev, last input offset)
from the last committed record, and skips input already chained.

Why not Faust's exactly_once: faust-streaming issues 517 and 323 (duplicates after rebalance or
restart) and 606 (commits past messages still in flight); see README "Design notes".
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import partial

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from pipeline import contract, names
from pipeline.chain.record import ChainHead, ChainId, Record, Signer, Source, chain_origin, parse_payload
from pipeline.chain.step import InputMessage, chain_batch
from pipeline.contract.registry import RegistryClient
from pipeline.errors import DependencyUnavailable, InfraError
from pipeline.kafka import config as kafka_config
from pipeline.kafka.io import read_tail
from pipeline.settings import Settings

log = logging.getLogger("aiaudit.chain")

MAX_BACKOFF_S = 5.0  # longest pause between retries of a batch whose dependency is down


@dataclass
class PartitionChain:
    partition: int
    producer: Producer
    head: ChainHead
    next_offset: int  # the input offset to resume from after an aborted transaction


def read_chain_head(settings: Settings, partition: int, origin: str) -> ChainHead:
    """The head of `origin` from the last committed record of its chain-topic partition."""
    tail = read_tail(settings, settings.kafka.chain_topic, partition)
    if not tail:
        return ChainHead.genesis(ChainId(origin))
    record = Record.from_wire(tail[-1].value())
    if record.origin != origin:
        # The partition's last chain is another generation: this one starts fresh.
        return ChainHead.genesis(ChainId(origin))
    src = parse_payload(record.payload)["src"]
    return record.next_head(int(src["offset"]))


class ChainWorker:
    def __init__(self, settings: Settings, signer: Signer, *, instance_id: str | None = None) -> None:
        self.settings = settings
        self.signer = signer
        # Fewer, fuller fetches: under load the broker answers per 64 KiB, not per message.
        conf: dict[str, object] = {"fetch.min.bytes": 65536, "fetch.wait.max.ms": 100}
        if instance_id:
            conf["group.instance.id"] = instance_id  # static membership: a restart takes over at once
        self.consumer = Consumer(kafka_config.stage_consumer(settings, settings.kafka.chain_group, **conf))
        self.chains: dict[int, PartitionChain] = {}
        registry = settings.kafka.schema_registry_url
        resolve = {"resolve": RegistryClient(registry).resolve} if registry else {}
        self._decode = partial(contract.decode, max_bytes=settings.chain.max_event_bytes, **resolve)
        self.stats = {"chained": 0, "dead_lettered": 0, "skipped": 0, "transactions": 0, "aborted": 0, "retried": 0}
        self._backoff_s = 0.0

    # --- assignment ------------------------------------------------------------------

    def _origin(self, partition: int) -> str:
        c = self.settings.chain
        return chain_origin(c.org, c.env, self.settings.kafka.requests_topic, partition, c.generation)

    def _fence(self, partition: int) -> Producer:
        """The chain's transactional producer. init_transactions fences the chain's previous
        writer and aborts its open transaction, so it must come before reading offsets or head."""
        origin = self._origin(partition)
        producer = Producer(kafka_config.transactional_producer(
            self.settings, f"aiaudit-chain:{origin}", **{
                "linger.ms": 5, "message.max.bytes": self.settings.chain.max_event_bytes * 4 + 65536}))
        producer.init_transactions(30)
        return producer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        topic = self.settings.kafka.requests_topic
        producers = {tp.partition: self._fence(tp.partition) for tp in partitions}
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30)}
        assigned = []
        for p, producer in producers.items():
            origin = self._origin(p)
            head = read_chain_head(self.settings, p, origin)
            start = max(committed.get(p, -1), head.last_src_offset + 1, 0)
            log.info("chain %s: resume at seq %d, input offset %d", origin, head.next_seq, start)
            self.chains[p] = PartitionChain(p, producer, head, start)
            assigned.append(TopicPartition(topic, p, start))
        consumer.assign(assigned)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            chain = self.chains.pop(tp.partition, None)
            if chain is not None:
                chain.producer.flush(10)
        consumer.unassign()

    # --- processing ------------------------------------------------------------------

    def _process(self, chain: PartitionChain, batch: list[InputMessage]) -> None:
        p, k = chain.partition, self.settings.kafka
        try:
            result = chain_batch(chain.head, self.signer, batch, self._decode)
        except DependencyUnavailable as exc:
            # Not the input's fault (the schema registry is down): nothing is written, the batch is
            # read again after a pause, and the pause grows while the outage lasts (backpressure).
            self.stats["retried"] += 1
            self._backoff_s = min(max(2 * self._backoff_s, 0.5), MAX_BACKOFF_S)
            log.warning("chain %s: %s; batch of %d retried in %.1fs", chain.head.origin, exc, len(batch), self._backoff_s)
            self.consumer.seek(TopicPartition(k.requests_topic, p, chain.next_offset))
            time.sleep(self._backoff_s)
            return
        self._backoff_s = 0.0
        producer = chain.producer
        try:
            producer.begin_transaction()
            for rec in result.records:
                producer.produce(k.chain_topic, value=rec.to_wire(), key=rec.origin.encode(), partition=p)
            for dl in result.dead_letters:
                src = dl.message.src
                producer.produce(k.dead_letter_topic, value=dl.message.value, key=dl.message.key, partition=p, headers=[
                    (names.HDR_REASON, dl.reason.encode()), (names.HDR_DETAIL, dl.detail.encode()),
                    (names.HDR_SRC, f"{src.topic}/{src.partition}/{src.offset}".encode()),
                ])
            next_offset = batch[-1].src.offset + 1
            producer.send_offsets_to_transaction(
                [TopicPartition(k.requests_topic, p, next_offset)], self.consumer.consumer_group_metadata(), 30)
            self._commit(producer)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH):
                log.warning("chain %s: fenced by another writer (%s); giving the partition up", chain.head.origin, err)
                self.chains.pop(p, None)
                self.consumer.pause([TopicPartition(k.requests_topic, p)])
                return
            log.warning("chain %s: transaction aborted (%s); retrying from offset %d", chain.head.origin, err, chain.next_offset)
            if err.txn_requires_abort():
                producer.abort_transaction(30)
            self.stats["aborted"] += 1
            self.consumer.seek(TopicPartition(k.requests_topic, p, chain.next_offset))
            return
        chain.head = result.head
        chain.next_offset = next_offset
        self.stats["chained"] += len(result.records)
        self.stats["dead_lettered"] += len(result.dead_letters)
        self.stats["skipped"] += result.skipped
        self.stats["transactions"] += 1

    @staticmethod
    def _commit(producer: Producer) -> None:
        for attempt in range(5):
            try:
                producer.commit_transaction(30)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable() or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def run(self, stop: threading.Event, *, progress_every_s: float = 5.0) -> None:
        """Chain until `stop` is set. Raises InfraError on a fatal consumer error."""
        k, c = self.settings.kafka, self.settings.chain
        self.consumer.subscribe([k.requests_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        last_report, last_chained = time.monotonic(), 0
        try:
            while not stop.is_set():
                msgs = self.consumer.consume(c.max_batch_events, timeout=c.poll_timeout_s)
                by_partition: dict[int, list[InputMessage]] = {}
                for msg in msgs:
                    if msg.error():
                        if msg.error().fatal():
                            raise InfraError(f"chain consumer: {msg.error()}")
                        log.warning("chain consumer: %s", msg.error())
                        continue
                    by_partition.setdefault(msg.partition(), []).append(
                        InputMessage(msg.value() or b"", msg.key(), Source(msg.topic(), msg.partition(), msg.offset())))
                for p, batch in by_partition.items():
                    chain = self.chains.get(p)
                    if chain is not None:
                        self._process(chain, batch)
                now = time.monotonic()
                if now - last_report >= progress_every_s:
                    rate = (self.stats["chained"] - last_chained) / (now - last_report)
                    log.info("chained %d (%.0f/s), dead-lettered %d, partitions %s", self.stats["chained"], rate,
                             self.stats["dead_lettered"], sorted(self.chains))
                    last_report, last_chained = now, self.stats["chained"]
        finally:
            for chain in self.chains.values():
                chain.producer.flush(10)
            self.consumer.close()
