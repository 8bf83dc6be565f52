"""Where a chain resumes (Kafka edge): its head from the last committed record, its Merkle tree
from the last committed tree state. Both were written in one transaction, so they agree."""

from __future__ import annotations

import logging

from confluent_kafka import Message

from pipeline.chain.checkpoint import TreeState
from pipeline.chain.merkle import CompactRange
from pipeline.chain.record import ChainHead, ChainId, Record, parse_payload
from pipeline.errors import InfraError
from pipeline.kafka.io import read_partition
from pipeline.settings import Settings

log = logging.getLogger("aiaudit.chain")


def read_tree(settings: Settings, partition: int, head: ChainHead, tail: Message | None) -> tuple[CompactRange, bool]:
    """The chain's tree at head.next_seq leaves, and whether that size is already signed: from the
    last committed tree state `tail` (written in the same transaction as the records it covers);
    rebuilt from the chain only for a chain written before checkpoints existed."""
    if head.next_seq == 0:
        return CompactRange(), False
    if tail is not None:
        state = TreeState.from_wire(tail.value() or b"")
        if state.origin == head.origin and state.size == head.next_seq:
            return state.range, state.note is not None
    log.warning("chain %s: no tree state at seq %d; rebuilding the tree from the chain (once)", head.origin,
                head.next_seq)
    tree = CompactRange()
    for msg in read_partition(settings, settings.kafka.chain_topic, partition):
        rec = Record.from_wire(msg.value() or b"")
        if rec.origin == head.origin and rec.seq == tree.size:
            tree.append(bytes.fromhex(rec.leaf_hash))
    if tree.size != head.next_seq:
        raise InfraError(f"chain {head.origin}: rebuilt {tree.size} leaves, the head is at seq {head.next_seq}")
    return tree, False


def read_chain_head(origin: str, tail: Message | None) -> ChainHead:
    """The head of `origin` from the last committed record of its chain-topic partition (`tail`)."""
    if tail is None:
        return ChainHead.genesis(ChainId(origin))
    record = Record.from_wire(tail.value() or b"")
    if record.origin != origin:
        # The partition's last chain is another generation: this one starts fresh.
        return ChainHead.genesis(ChainId(origin))
    src = parse_payload(record.payload)["src"]
    return record.next_head(int(src["offset"]))
