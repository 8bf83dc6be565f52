"""Kafka readers shared by the workers and tools (I/O edge): the tail of a partition, committed and
end offsets, each retried while a new topic or group is still settling."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from aiaudit.pipeline import metrics
from aiaudit.pipeline.errors import InfraError
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.settings import Settings

_TRANSIENT = frozenset({
    KafkaError._UNKNOWN_PARTITION, KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
    # a broker connection torn down while the broker restarts (a chain worker reading its tails
    # on the rebalance a broker outage causes stopped on it once: tests/integration/test_broker_down.py)
    KafkaError._DESTROY_BROKER,
})


def with_data(messages: list[Message], settings: Settings, who: str) -> list[Message]:
    """The messages of a consume() call that carry data. A fatal error raises InfraError; any other
    (a broker away, a partition at its end) is logged in our words and skipped: the client retries."""
    out = []
    for msg in messages:
        err = msg.error()
        if err is None:
            out.append(msg)
        elif err.fatal():
            raise InfraError(f"{who}: fatal consumer error: {err}")
        else:
            kafka_config.LOG.warning(kafka_config.consumer_problem(settings, who, err))
    return out


def position(msg: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a consumed message; confluent-kafka types them optional,
    set on every message a consumer returns without an error."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise InfraError("a consumed Kafka message without topic, partition or offset")
    return topic, partition, offset


class InputLag:
    """Keeps aiaudit_input_lag_messages for the partitions a consumer holds, at most every `every_s`:
    each partition's end as of the consumer's last fetch (cached by librdkafka, no request to the
    broker; a read_committed consumer's position passes the transaction markers, so a partition read
    to its end shows 0) less the consumer's position. A partition given up is dropped from the
    gauge, so each series is only ever its owner's."""

    def __init__(self, worker: str, every_s: float = 5.0) -> None:
        self.worker, self.every_s = worker, every_s
        self._at = float("-inf")
        self._shown: set[tuple[str, int]] = set()

    def update(self, consumer: Consumer, *, force: bool = False) -> dict[tuple[str, int], int]:
        """The lag of each held partition whose position is known ({} when not yet due)."""
        now = time.monotonic()
        if not force and now - self._at < self.every_s:
            return {}
        self._at = now
        lags: dict[tuple[str, int], int] = {}
        for tp in consumer.position(consumer.assignment()):
            if tp.offset < 0 or tp.topic is None:
                continue  # nothing read yet: the position is not known
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                lags[(tp.topic, tp.partition)] = max(0, high - tp.offset)
        for topic, partition in self._shown - lags.keys():
            try:
                metrics.INPUT_LAG.remove(self.worker, topic, str(partition))
            except KeyError:
                pass
        for (topic, partition), lag in lags.items():
            metrics.INPUT_LAG.labels(self.worker, topic, str(partition)).set(lag)
        self._shown = set(lags)
        return lags


def transient(err: KafkaError) -> bool:
    """Errors a fresh broker, topic or group gives for a while: retry, do not fail."""
    return err.retriable() or err.code() in _TRANSIENT


def fenced(err: KafkaError) -> bool:
    """A transactional writer that another writer with its transactional id has fenced (or that
    failed fatally): it must give its partition up, never retry."""
    return err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)


def commit_transaction(producer: Producer) -> None:
    """Commit the open transaction, retrying what the broker says is retriable (up to 5 times)."""
    for attempt in range(5):
        try:
            producer.commit_transaction(30)
            return
        except KafkaException as exc:
            if not exc.args[0].retriable() or attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def watermarks(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> tuple[int, int]:
    """(low, high) offsets, retried while a new topic's partitions are still electing leaders."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=timeout_s)
        except KafkaException as exc:
            err = exc.args[0]
            if not transient(err) or time.monotonic() > deadline:
                raise InfraError(f"offsets of {tp.topic}[{tp.partition}]: {err}") from exc
            time.sleep(0.2)


def _reader(settings: Settings, name: str) -> Consumer:
    extra: dict[str, Any] = {"enable.partition.eof": True, "fetch.message.max.bytes": 8 * 1024 * 1024}
    return Consumer(kafka_config.consumer(settings, name, read_committed=True, **extra))


def read_tails(settings: Settings, topic: str, partitions: list[int], *, timeout_s: float = 30.0) -> dict[int, Message | None]:
    """The last committed data message of each partition (None for a partition without one), read
    with one consumer for all of them: a worker taking over several chains pays one read, not one
    per partition. Reads back a growing window from the end, so aborted transactions and control
    records between the tail and the last committed record are stepped over."""
    consumer = _reader(settings, "aiaudit-tail-reader")
    try:
        bounds = {p: watermarks(consumer, TopicPartition(topic, p), timeout_s) for p in partitions}
        out: dict[int, Message | None] = {}
        todo, window = [p for p in partitions if bounds[p][1] > bounds[p][0]], 64
        out.update({p: None for p in partitions if p not in todo})
        deadline = time.monotonic() + timeout_s
        while todo:
            starts = {p: max(bounds[p][0], bounds[p][1] - window) for p in todo}
            consumer.assign([TopicPartition(topic, p, s) for p, s in starts.items()])
            last: dict[int, Message] = {}
            at_end: set[int] = set()
            while len(at_end) < len(todo):
                if time.monotonic() > deadline:
                    raise InfraError(f"reading the tails of {topic} took over {timeout_s}s")
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(position(msg)[1])
                        continue
                    raise InfraError(f"reading {topic}[{msg.partition()}]: {err}")
                last[position(msg)[1]] = msg
            for p in list(todo):
                if p in last or starts[p] == bounds[p][0]:
                    out[p] = last.get(p)
                    todo.remove(p)
            window *= 8
        return out
    finally:
        consumer.close()


def read_partition(settings: Settings, topic: str, partition: int, *, timeout_s: float = 600.0) -> Iterator[Message]:
    """Every committed data message of one partition, oldest first, up to its end at the call."""
    return read_partitions(settings, topic, [partition], timeout_s=timeout_s)


def read_partitions(settings: Settings, topic: str, partitions: list[int], *, timeout_s: float = 600.0,
                    starts: dict[int, int] | None = None) -> Iterator[Message]:
    """Every committed data message of several partitions, each partition's in order, up to their
    ends at the call, read with one consumer (a worker taking over partitions restores their state);
    from `starts[p]` where given (clamped to what the partition still holds)."""
    consumer = _reader(settings, "aiaudit-partition-reader")
    try:
        bounds = {p: watermarks(consumer, TopicPartition(topic, p), 30.0) for p in partitions}
        first = {p: max(low, (starts or {}).get(p, low)) for p, (low, _) in bounds.items()}
        todo = {p for p, (_, high) in bounds.items() if high > first[p]}
        if not todo:
            return
        consumer.assign([TopicPartition(topic, p, first[p]) for p in todo])
        deadline = time.monotonic() + timeout_s
        while todo:
            if time.monotonic() > deadline:
                raise InfraError(f"reading {topic} {sorted(todo)} did not reach the end in {timeout_s:.0f}s")
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    todo.discard(position(msg)[1])
                    continue
                raise InfraError(f"reading {topic}[{msg.partition()}]: {msg.error()}")
            yield msg
    finally:
        consumer.close()


def committed_offsets(settings: Settings, group: str, topic: str, partitions: int, timeout_s: float = 30.0) -> dict[int, int]:
    """The group's last committed offset per partition (-1 where none).

    read_uncommitted here only means the offset fetch does not wait for a transaction still
    open on these partitions (librdkafka asks for stable offsets under read_committed, which
    blocks until a killed writer's transaction is aborted); the offsets returned are the
    committed ones either way.
    """
    consumer = Consumer(kafka_config.consumer(settings, group, read_committed=False))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=min(10.0, timeout_s))
                return {tp.partition: tp.offset if tp.offset >= 0 else -1 for tp in tps}
            except KafkaException as exc:
                if not transient(exc.args[0]) or time.monotonic() > deadline:
                    raise InfraError(f"committed offsets of group {group} on {topic}: {exc.args[0]}") from exc
                time.sleep(0.5)
    finally:
        consumer.close()


def end_offsets(settings: Settings, topic: str, partitions: int, timeout_s: float = 10.0) -> dict[int, int]:
    """High watermark per partition."""
    consumer = Consumer(kafka_config.consumer(settings, "aiaudit-offsets"))
    try:
        return {p: watermarks(consumer, TopicPartition(topic, p), timeout_s)[1] for p in range(partitions)}
    finally:
        consumer.close()
