"""The chain worker (Kafka edge): requests topic -> signed, hash-chained audit chain topic.

One chain per input partition, written to the same partition of the chain topic. Each batch
of a partition is one Kafka transaction holding its records, its dead letters and the input
offset, so a kill -9 at any moment leaves either all of a batch or none of it. The
transactional id is the chain's origin: a new writer of a chain (a restart, or another worker
after a rebalance) fences the old one, and its open transaction is aborted, so no zombie can
fork the chain. Events no registered emitter key signed are dead-lettered (unauthenticated_emitter).
On assignment the worker reads the chain head (seq, prev, last input offset)
from the last committed record, and skips input already chained.

Why not Faust's exactly_once: faust-streaming issues 517 and 323 (duplicates after rebalance or
restart) and 606 (commits past messages still in flight); see docs/design.md.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from aiaudit.pipeline import contract, metrics, names
from aiaudit.pipeline.chain.checkpoint import Notary, NotaryRefused, NotaryUnavailable, TreeState, due, extend
from aiaudit.pipeline.chain.kinds import KIND_RECORD_MAX_BYTES, REQUEST, kind_named
from aiaudit.pipeline.chain.merkle import CompactRange
from aiaudit.pipeline.chain.record import ChainHead, Record, Signer, Source, chain_origin
from aiaudit.pipeline.chain.resume import read_chain_head, read_leaves, read_tree
from aiaudit.pipeline.chain.step import Admit, InputMessage, chain_batch, chain_messages
from aiaudit.pipeline.contract import format_ts, key_sets
from aiaudit.pipeline.contract.analyst_keys import AnalystKeysFile
from aiaudit.pipeline.contract.analyst_keys import key_set_file as analyst_key_set_file
from aiaudit.pipeline.contract.analysts import SIGNED_KINDS, signed_message_problem
from aiaudit.pipeline.contract.codec import SchemaResolver, no_registry
from aiaudit.pipeline.contract.emitter_keys import EmitterKeysFile, key_set_file
from aiaudit.pipeline.contract.registry import RegistryClient
from aiaudit.pipeline.errors import DependencyUnavailable, InfraError, UnauthenticatedEmitter
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.kafka.io import InputLag, commit_transaction, fenced, position, read_tails, with_data
from aiaudit.pipeline.settings import Settings

log = logging.getLogger("aiaudit.chain")

MAX_BACKOFF_S = 5.0  # longest pause between retries of a batch whose dependency is down
MAX_UNSIGNED_LEAVES = 1 << 20  # records a chain runs ahead of an unanswering remote signer


def _headers(msg: Message) -> tuple[tuple[str, bytes], ...]:
    """A consumed message's headers as (name, bytes) pairs (a header without a value: empty bytes)."""
    headers = msg.headers() or ()
    pairs = headers.items() if isinstance(headers, dict) else headers
    return tuple((name, value if isinstance(value, bytes) else (value or "").encode()) for name, value in pairs)


@dataclass
class PartitionChain:
    partition: int
    producer: Producer
    head: ChainHead
    next_offset: int  # the input offset to resume from after an aborted transaction
    tree: CompactRange  # the Merkle tree over the chain's leaf hashes, at head.next_seq leaves
    notary: Notary | None  # signs this chain's checkpoints and the log's time over them
    signed_size: int = -1  # size of the last signed checkpoint written (-1: none since assignment)
    signed_at: float = 0.0  # monotonic time of it
    stamped_at: float = 0.0  # monotonic time of the last signed timestamp written
    # For a remote signer (it signs only extensions of what it signed): a tree it signed, and the
    # leaf hashes appended since (32 bytes each). base None: not known yet (the signer was down).
    base: CompactRange | None = None
    unsigned: bytearray = field(default_factory=bytearray)
    tail_offset: int = -1  # the chain topic's last record offset at assignment (to read leaves back)


class ChainWorker:
    def __init__(self, settings: Settings, signer: Signer, *, notary: Notary | None = None,
                 instance_id: str | None = None, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 kind: str = REQUEST) -> None:
        """`kind` REQUEST chains AI requests (format v1, validated, bad input dead-lettered); any other
        kind (chain/kinds.py) chains its input topic's messages byte-exact (format v2)."""
        self.settings = settings
        self.signer = signer
        self.notary = notary
        self.clock = clock
        self.kind = kind
        k = settings.kafka
        if kind == REQUEST:
            self.input_topic, self.chain_topic, self.checkpoints_topic = k.requests_topic, k.chain_topic, \
                k.checkpoints_topic
            group = k.chain_group
        else:
            spec = kind_named(kind)
            self.input_topic, self.chain_topic, self.checkpoints_topic = spec.input_topic(k), spec.chain_topic(k), \
                spec.checkpoints_topic(k)
            group = spec.group(k)
        # Fewer, fuller fetches: under load the broker answers per 64 KiB, not per message; idle, it
        # holds a fetch up to 500 ms (100 ms cost the idle broker about 45 ms of CPU a second more).
        conf: dict[str, object] = {"fetch.min.bytes": 65536, "fetch.wait.max.ms": 500}
        if instance_id:
            conf["group.instance.id"] = instance_id  # static membership: a restart takes over at once
        self.consumer = Consumer(kafka_config.stage_consumer(settings, group, **conf))
        self.chains: dict[int, PartitionChain] = {}
        registry = settings.kafka.schema_registry_url
        resolve: SchemaResolver = RegistryClient(registry).resolve if registry else no_registry
        self._decode_avro = partial(contract.decode, max_bytes=settings.chain.max_event_bytes, resolve=resolve)
        self.emitter_keys = EmitterKeysFile(key_set_file(settings), required=settings.chain.require_emitter_signature)
        self.analyst_keys = AnalystKeysFile(analyst_key_set_file(settings)) \
            if kind in SIGNED_KINDS and settings.chain.require_analyst_signature else None
        self.lag = InputLag("chain")
        self.stats = {"chained": 0, "dead_lettered": 0, "skipped": 0, "transactions": 0, "aborted": 0, "retried": 0}
        self._backoff_s = 0.0
        self.worker_id = f"{group}/{instance_id or socket.gethostname() + ':' + str(os.getpid())}"
        self._key_sets_sent: set[tuple[str, str]] = set()  # (set, sha256) recorded, or in the transaction in flight
        self._key_set_seen: tuple[object, str] = (None, "")  # the key set document last hashed, and its sha256

    # --- assignment ------------------------------------------------------------------

    def _origin(self, partition: int) -> str:
        c = self.settings.chain
        return chain_origin(c.org, c.env, self.input_topic, partition, c.generation)

    def _fence(self, partition: int, origin: str | None = None) -> Producer:
        """The chain's transactional producer. init_transactions fences the chain's previous
        writer and aborts its open transaction, so it must come before reading offsets or head."""
        origin = origin or self._origin(partition)
        producer = Producer(kafka_config.transactional_producer(
            self.settings, f"aiaudit-chain:{origin}", **{
                "linger.ms": 5, "message.max.bytes": self.settings.chain.max_event_bytes * 4 + 65536
                if self.kind == REQUEST else KIND_RECORD_MAX_BYTES}))
        producer.init_transactions(30)
        return producer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        topic = self.input_topic
        producers = {tp.partition: self._fence(tp.partition) for tp in partitions}
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30)}
        chain_tails = read_tails(self.settings, self.chain_topic, list(producers))
        state_tails = read_tails(self.settings, self.checkpoints_topic, list(producers))
        assigned = []
        for p, producer in producers.items():
            origin = self._origin(p)
            head = read_chain_head(origin, chain_tails[p])
            last = chain_tails[p]
            if head.next_seq == 0 and last is not None:
                self._close_previous(p, last, state_tails[p])
            start = max(committed.get(p, -1), head.last_src_offset + 1, 0)
            tree, signed = read_tree(self.settings, p, head, state_tails[p],
                                     self.notary.public_key if self.notary else None, chain_topic=self.chain_topic)
            log.info("chain %s: resume at seq %d, input offset %d", origin, head.next_seq, start)
            # One signed checkpoint per (origin, size): a size signed before the restart is not signed again.
            tail = chain_tails[p]
            chain = PartitionChain(p, producer, head, start, tree, self.notary, tree.size if signed else -1,
                                   tail_offset=(tail.offset() or 0) if tail is not None and head.next_seq else -1)
            if self.notary is not None and self.notary.remote:
                self._learn_base(chain)
            self.chains[p] = chain
            assigned.append(TopicPartition(topic, p, start))
        consumer.assign(assigned)
        # A partition this worker gave up while fenced (paused, see _gave_up_if_fenced) and now owns
        # again would otherwise stay paused: librdkafka keeps a partition's pause across assignments.
        consumer.resume(assigned)

    def _close_previous(self, p: int, chain_tail: Message, state_tail: Message | None) -> None:
        """The partition's chain topic ends with an earlier generation's chain: close it with a signed
        final checkpoint at its last size (its writers fenced first), so that its tail is complete
        and never judged stale. Done once, at the new generation's first start; a chain that cannot
        be closed now (the signer is down) is logged and stays open."""
        c, topic = self.settings.chain, self.input_topic
        old = Record.from_wire(chain_tail.value() or b"")
        earlier = {chain_origin(c.org, c.env, topic, p, g) for g in range(1, c.generation)}
        if self.notary is None or old.origin not in earlier or state_tail is None:
            return
        state = TreeState.from_wire(state_tail.value() or b"")
        if state.origin != old.origin or state.final is not None:
            return  # closed already
        if state.size != old.seq + 1:
            log.warning("chain %s: its last tree state is at size %d, its last record seq %d; not closed",
                        old.origin, state.size, old.seq)
            return
        try:
            if self.notary.remote:
                signed = self.notary.signed_tree(old.origin)
                leaves = read_leaves(self.settings, p, old.origin, signed.size, state.size, chain_tail.offset() or 0,
                                     chain_topic=self.chain_topic) \
                    if signed.size <= state.size else b""
                base = signed
            else:
                base, leaves = state.range, b""
            now = int(self.clock().timestamp())
            note, stamp = self.notary.sign(old.origin, base, leaves, state.range, now)  # its last size, signed
            final, _ = self.notary.sign(old.origin, state.range, b"", state.range, now, final=True)
        except (NotaryRefused, NotaryUnavailable) as exc:
            log.warning("chain %s (an earlier generation) not closed: %s; verify judges its tail by the tail rule",
                        old.origin, exc)
            return
        producer = self._fence(p, old.origin)  # its own writers, if any still run, are fenced
        producer.begin_transaction()
        producer.produce(self.checkpoints_topic, key=old.origin.encode(), partition=p, value=TreeState(
            old.origin, state.range, (), note, format_ts(self.clock()), stamp, final).to_wire())
        commit_transaction(producer)
        producer.flush(10)
        log.info("chain %s closed at size %d with a signed final checkpoint (generation %d starts)", old.origin,
                 state.size, c.generation)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            chain = self.chains.pop(tp.partition, None)
            if chain is not None:
                chain.producer.flush(10)
        consumer.unassign()

    # --- processing ------------------------------------------------------------------

    def _decoder(self) -> Callable[[bytes], dict[str, Any]]:
        """Decode, then hold the event to the emitter key set (as it is now, at this worker's time:
        a retired key is refused whatever time the event claims)."""
        keys, now = self.emitter_keys.current(), format_ts(self.clock())
        if keys is None:
            return self._decode_avro

        def decode(data: bytes) -> dict[str, Any]:
            event = self._decode_avro(data)
            problem = keys.problem(event, at=now)
            if problem is not None:
                raise UnauthenticatedEmitter(problem)
            return event
        return decode

    def _admit(self) -> Admit | None:
        """For status changes and access records: refuse one no registered key of the analyst key set
        signed for whom it names (checked against the key set as it is now, at this worker's time)."""
        if self.analyst_keys is None:
            return None
        keys, now, refusal = self.analyst_keys.current(), format_ts(self.clock()), SIGNED_KINDS[self.kind].refusal

        def admit(msg: InputMessage) -> tuple[str, str] | None:
            problem = signed_message_problem(self.kind, msg.value, keys, at=now)
            return None if problem is None else (refusal, problem)
        return admit

    def _key_set_first_used(self) -> dict[str, Any] | None:
        """The key-set message to record with this batch: the emitter key set (requests) or the analyst
        key set (signed kinds) this worker checks with, the first time it checks with it; else None."""
        keys_file = self.emitter_keys if self.kind == REQUEST else self.analyst_keys
        doc = keys_file.doc if keys_file is not None else None
        if doc is None:
            return None
        if self._key_set_seen[0] is not doc:
            self._key_set_seen = (doc, key_sets.digest(doc))
        name = key_sets.EMITTERS if self.kind == REQUEST else key_sets.ANALYSTS
        if (name, self._key_set_seen[1]) in self._key_sets_sent:
            return None
        self._key_sets_sent.add((name, self._key_set_seen[1]))
        return key_sets.message(name, doc, first_used_at=format_ts(self.clock()), worker=self.worker_id)

    def _process(self, chain: PartitionChain, batch: list[InputMessage]) -> None:
        p, k = chain.partition, self.settings.kafka
        started = time.perf_counter()
        try:
            result = chain_batch(chain.head, self.signer, batch, self._decoder()) if self.kind == REQUEST \
                else chain_messages(chain.head, self.signer, self.kind, batch, self._admit())
        except DependencyUnavailable as exc:
            # Not the input's fault (the schema registry is down): nothing is written, the batch is
            # read again after a pause, and the pause grows while the outage lasts (backpressure).
            self.stats["retried"] += 1
            self._backoff_s = min(max(2 * self._backoff_s, 0.5), MAX_BACKOFF_S)
            log.warning("chain %s: %s; batch of %d retried in %.1fs", chain.head.origin, exc, len(batch), self._backoff_s)
            self.consumer.seek(TopicPartition(self.input_topic, p, chain.next_offset))
            time.sleep(self._backoff_s)
            return
        self._backoff_s = 0.0
        producer = chain.producer
        tree, tiles = extend(chain.tree, [rec.leaf_hash for rec in result.records])
        new_leaves = b"".join(bytes.fromhex(rec.leaf_hash) for rec in result.records) \
            if chain.notary is not None and chain.notary.remote else b""
        if len(chain.unsigned) >= MAX_UNSIGNED_LEAVES * 32 and chain.notary is not None:
            # The signer has not answered for MAX_UNSIGNED_LEAVES records: chaining waits for it
            # (the events wait in Kafka) rather than hold an unbounded tail in memory.
            if self._signed(chain, chain.tree, b"") is None:
                self.stats["retried"] += 1
                self._backoff_s = min(max(2 * self._backoff_s, 0.5), MAX_BACKOFF_S)
                log.warning("chain %s: %d records await a checkpoint the signer does not give; chaining paused "
                            "%.1fs", chain.head.origin, len(chain.unsigned) // 32, self._backoff_s)
                self.consumer.seek(TopicPartition(self.input_topic, p, chain.next_offset))
                time.sleep(self._backoff_s)
                return
        note = self._note_if_due(chain, tree, new_leaves) if result.records else None
        key_set = self._key_set_first_used()
        try:
            producer.begin_transaction()
            if key_set is not None:  # the key set checked with is on record with the first batch it checked
                producer.produce(k.key_sets_topic, key=key_set["key_set"].encode(), value=orjson.dumps(key_set))
            for rec in result.records:
                producer.produce(self.chain_topic, value=rec.to_wire(), key=rec.origin.encode(), partition=p)
            if result.records:  # the tree state commits with the records it covers
                self._produce_state(chain, tree, tiles, note)
            for dl in result.dead_letters:
                src = dl.message.src
                producer.produce(k.dead_letter_topic, value=dl.message.value, key=dl.message.key, partition=p, headers=[
                    (names.HDR_REASON, dl.reason.encode()), (names.HDR_DETAIL, dl.detail.encode()),
                    (names.HDR_SRC, f"{src.topic}/{src.partition}/{src.offset}".encode()),
                ])
            next_offset = batch[-1].src.offset + 1
            producer.send_offsets_to_transaction(
                [TopicPartition(self.input_topic, p, next_offset)], self.consumer.consumer_group_metadata(), 30)
            commit_transaction(producer)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if key_set is not None:
                self._key_sets_sent.discard((key_set["key_set"], key_set["sha256"]))  # the next batch records it
            if self._gave_up_if_fenced(chain, err):
                return
            log.warning("chain %s: transaction aborted (%s); retrying from offset %d", chain.head.origin, err, chain.next_offset)
            if err.txn_requires_abort():
                producer.abort_transaction(30)
            self.stats["aborted"] += 1
            metrics.TRANSACTION_ABORTS.labels("chain", self.kind).inc()
            self.consumer.seek(TopicPartition(self.input_topic, p, chain.next_offset))
            return
        metrics.EVENTS_IN.labels("chain", self.kind).inc(len(batch))
        metrics.EVENTS_OUT.labels("chain", self.kind).inc(len(result.records))
        for dl in result.dead_letters:
            metrics.DEAD_LETTERS.labels("chain", self.kind, metrics.reason_label(dl.reason)).inc()
        metrics.BATCH_SECONDS.labels("chain", self.kind).observe(time.perf_counter() - started)
        chain.head = result.head
        chain.tree = tree
        self._after_commit(chain, tree, new_leaves, note is not None)
        chain.next_offset = next_offset
        self.stats["chained"] += len(result.records)
        self.stats["dead_lettered"] += len(result.dead_letters)
        self.stats["skipped"] += result.skipped
        self.stats["transactions"] += 1

    def _learn_base(self, chain: PartitionChain) -> None:
        """What a remote signer signed for this chain, and the leaves since, so that the next
        request shows it an extension. Its tree past this worker's is checked by the signer once
        this worker's tree reaches it; its tree at or below is checked here against the records."""
        assert chain.notary is not None
        origin, tree = chain.head.origin, chain.tree
        try:
            signed = chain.notary.signed_tree(origin)
        except NotaryUnavailable as exc:
            log.warning("chain %s: %s; its checkpoints wait for the signer", origin, exc)
            return
        if signed.size > tree.size:  # signed in a transaction that then aborted: the same records come again
            chain.base, chain.unsigned = tree.copy(), bytearray()
            return
        leaves = read_leaves(self.settings, chain.partition, origin, signed.size, tree.size, chain.tail_offset,
                             chain_topic=self.chain_topic)
        rebuilt, _ = extend(signed, [leaves[i:i + 32].hex() for i in range(0, len(leaves), 32)])
        if rebuilt.root() != tree.root():
            raise InfraError(f"chain {origin}: the checkpoint signer signed size {signed.size} of another tree than "
                             f"the records in the chain topic make; refusing to extend it. Run `aiaudit verify "
                             f"--origin {origin}`")
        chain.base, chain.unsigned = signed, bytearray(leaves)

    def _signed(self, chain: PartitionChain, tree: CompactRange, new_leaves: bytes) -> tuple[str, str] | None:
        """The notary's (note, timestamp) for `tree`, or None when it is not available now."""
        notary = chain.notary
        if notary is None:
            return None
        if notary.remote and chain.base is None:
            self._learn_base(chain)
            if chain.base is None:
                return None
        base = chain.base if chain.base is not None else tree
        try:
            return notary.sign(chain.head.origin, base, bytes(chain.unsigned) + new_leaves, tree,
                               int(self.clock().timestamp()))
        except NotaryRefused as exc:
            if exc.behind:
                log.info("chain %s: the signer signed size %d already; signing again past it", chain.head.origin,
                         exc.signed_size)
            else:
                log.error("chain %s: the checkpoint signer refuses: %s", chain.head.origin, exc.reason)
        except NotaryUnavailable as exc:
            log.warning("chain %s: %s; the checkpoint is signed when it answers", chain.head.origin, exc)
        return None

    def _after_commit(self, chain: PartitionChain, tree: CompactRange, new_leaves: bytes, signed: bool) -> None:
        if signed:
            metrics.CHECKPOINT_TIME.labels(self.kind, str(chain.partition)).set_to_current_time()
            chain.signed_size = tree.size
            chain.signed_at = chain.stamped_at = time.monotonic()
            chain.base, chain.unsigned = tree.copy(), bytearray()
        elif chain.notary is not None and chain.notary.remote:
            chain.unsigned += new_leaves

    def _note_if_due(self, chain: PartitionChain, tree: CompactRange, new_leaves: bytes) -> tuple[str, str] | None:
        if chain.notary is None or tree.size == chain.signed_size:
            return None
        pressed = len(chain.unsigned) >= MAX_UNSIGNED_LEAVES * 32
        if not pressed and not due(time.monotonic(), chain.signed_at, self.settings.chain.checkpoint_interval_s):
            return None
        return self._signed(chain, tree, new_leaves)

    def _produce_state(self, chain: PartitionChain, tree: CompactRange, tiles: list[tuple[int, int, bytes]],
                       signed: tuple[str, str] | None) -> None:
        now = self.clock()
        note, stamp = signed if signed is not None else (None, None)
        state = TreeState(chain.head.origin, tree, tuple(tiles), note, format_ts(now), stamp)
        chain.producer.produce(self.checkpoints_topic, value=state.to_wire(),
                               key=chain.head.origin.encode(), partition=chain.partition)

    def _sign_quiet_chains(self) -> None:
        """A chain that went quiet since its last signed checkpoint gets one for its last size, in a
        transaction of its own, once the interval has passed: the newest records never stay unsigned.
        A chain whose last size is signed gets a heartbeat (a signed time for that size) every
        heartbeat interval: "nothing new since" is then signed too."""
        for chain in list(self.chains.values()):
            if chain.tree.size == 0:
                continue
            note = self._note_if_due(chain, chain.tree, b"")
            heartbeat = None
            if note is None:
                if chain.notary is None or chain.signed_size != chain.tree.size or not due(
                        time.monotonic(), chain.stamped_at, self.settings.chain.heartbeat_interval_s):
                    continue
                signed = self._signed(chain, chain.tree, b"")
                if signed is None:
                    chain.stamped_at = time.monotonic()  # asked again at the next heartbeat
                    continue
                heartbeat = signed[1]
            try:
                chain.producer.begin_transaction()
                if heartbeat is None:
                    self._produce_state(chain, chain.tree, [], note)
                else:
                    state = TreeState(chain.head.origin, chain.tree, (), None, format_ts(self.clock()), heartbeat)
                    chain.producer.produce(self.checkpoints_topic, value=state.to_wire(),
                                           key=chain.head.origin.encode(), partition=chain.partition)
                commit_transaction(chain.producer)
            except KafkaException as exc:
                if self._gave_up_if_fenced(chain, exc.args[0]):
                    continue
                log.warning("chain %s: checkpoint not written (%s); retried later", chain.head.origin, exc.args[0])
                if exc.args[0].txn_requires_abort():
                    chain.producer.abort_transaction(30)
                continue
            if heartbeat is None:
                self._after_commit(chain, chain.tree, b"", True)
            else:
                metrics.CHECKPOINT_TIME.labels(self.kind, str(chain.partition)).set_to_current_time()
            chain.stamped_at = time.monotonic()

    def _gave_up_if_fenced(self, chain: PartitionChain, err: KafkaError) -> bool:
        """A fenced (or fatally failed) writer gives its chain up: another writer owns it now."""
        if not fenced(err):
            return False
        log.warning("chain %s: fenced by another writer (%s); giving the partition up", chain.head.origin, err)
        self.chains.pop(chain.partition, None)
        self.consumer.pause([TopicPartition(self.input_topic, chain.partition)])
        return True


    def run(self, stop: threading.Event, *, progress_every_s: float = 5.0) -> None:
        """Chain until `stop` is set. Raises InfraError on a fatal consumer error."""
        c = self.settings.chain
        kafka_config.warn_if_unreachable(self.settings, self.consumer, "chain worker")
        self.consumer.subscribe([self.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        last_report, last_chained = time.monotonic(), 0
        try:
            while not stop.is_set():
                msgs = self.consumer.consume(c.max_batch_events, timeout=c.poll_timeout_s)
                by_partition: dict[int, list[InputMessage]] = {}
                for msg in with_data(msgs, self.settings, "chain worker"):
                    src = Source(*position(msg))
                    by_partition.setdefault(src.partition, []).append(InputMessage(
                        msg.value() or b"", msg.key(), src, _headers(msg), msg.timestamp()[1]))
                for p, batch in by_partition.items():
                    chain = self.chains.get(p)
                    if chain is not None:
                        self._process(chain, batch)
                self._sign_quiet_chains()
                self.lag.update(self.consumer)
                now = time.monotonic()
                if now - last_report >= progress_every_s:
                    rate = (self.stats["chained"] - last_chained) / (now - last_report)
                    if self.stats["chained"] != last_chained:  # an idle worker stays quiet
                        log.info("%s: chained %d (%.0f/s), dead-lettered %d, partitions %s", self.kind,
                                 self.stats["chained"], rate, self.stats["dead_lettered"], sorted(self.chains))
                    last_report, last_chained = now, self.stats["chained"]
        finally:
            for chain in self.chains.values():
                chain.producer.flush(10)
            self.consumer.close()
