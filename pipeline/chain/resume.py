"""Where a chain resumes (Kafka edge): its head from the last committed record, its Merkle tree
from the last committed tree state. Both were written in one transaction, so they agree."""

from __future__ import annotations

import logging

from confluent_kafka import Message

from aiaudit.pipeline.chain.checkpoint import TreeState
from aiaudit.pipeline.chain.formats import parse_stored
from aiaudit.pipeline.chain.merkle import CompactRange
from aiaudit.pipeline.chain.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Checkpoint,
    NoteError,
    Verifier,
    cosignatures,
    open_checkpoint,
)
from aiaudit.pipeline.chain.record import ChainHead, ChainId, Record
from aiaudit.pipeline.errors import InfraError
from aiaudit.pipeline.kafka.io import read_partition, read_partitions
from aiaudit.pipeline.settings import Settings

log = logging.getLogger("aiaudit.chain")


def signed_root_problem(state: TreeState, checkpoint_public: bytes) -> str | None:
    """Why the stored compact range of `state` is not the one its own signature (a checkpoint note,
    or the log's timestamp cosignature) commits to; None when it is, or when the state is unsigned."""
    root = state.range.root()
    try:
        if state.note is not None:
            cp = open_checkpoint(state.note, Verifier(state.origin, SIG_ED25519, checkpoint_public))
            if (cp.size, cp.root) != (state.size, root):
                return f"signed checkpoint is ({cp.size}, {cp.root.hex()[:16]}…), the stored range ({state.size}, " \
                       f"{root.hex()[:16]}…)"
        elif state.timestamp is not None:
            clock = Verifier(state.origin, SIG_COSIGNATURE_V1, checkpoint_public)
            note = Checkpoint(state.origin, state.size, root).text() + "\n" + state.timestamp
            if state.origin not in cosignatures(note, [clock]):
                return "the log's signed time does not cover the stored range's root"
    except NoteError as exc:
        return f"its signature does not verify over the stored range: {exc}"
    return None


def read_tree(settings: Settings, partition: int, head: ChainHead, tail: Message | None,
              checkpoint_public: bytes | None = None, *, chain_topic: str | None = None) -> tuple[CompactRange, bool]:
    """The chain's tree at head.next_seq leaves, and whether that size is already signed: from the
    last committed tree state `tail` (written in the same transaction as the records it covers);
    rebuilt from the chain only for a chain written before checkpoints existed. With the checkpoint
    public key, a signed state whose compact range is not what its signature commits to is refused
    (InfraError): extending it would sign a tree the records do not make."""
    if head.next_seq == 0:
        return CompactRange(), False
    if tail is not None:
        state = TreeState.from_wire(tail.value() or b"")
        if state.origin == head.origin and state.size == head.next_seq:
            problem = signed_root_problem(state, checkpoint_public) if checkpoint_public else None
            if problem is not None:
                raise InfraError(f"chain {head.origin}: the stored tree state at size {state.size} does not match its "
                                 f"signed root ({problem}); refusing to extend it. Run `aiaudit verify --origin "
                                 f"{head.origin}` and restore the checkpoints topic")
            return state.range, state.note is not None
    log.warning("chain %s: no tree state at seq %d; rebuilding the tree from the chain (once)", head.origin,
                head.next_seq)
    tree = CompactRange()
    for msg in read_partition(settings, chain_topic or settings.kafka.chain_topic, partition):
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
    src = parse_stored(record.payload)["src"]
    return record.next_head(int(src["offset"]))


def read_leaves(settings: Settings, partition: int, origin: str, first_seq: int, end_seq: int, tail_offset: int, *,
                chain_topic: str | None = None) -> bytes:
    """The leaf hashes of `origin`'s records first_seq..end_seq-1 (concatenated), read back from
    the chain topic's partition in a growing window below its last record (`tail_offset`): what a
    worker resuming with an unsigned tail sends the checkpoint signer."""
    want = end_seq - first_seq
    if want <= 0:
        return b""
    window = 2 * want + 64
    while True:
        start = max(0, tail_offset - window)
        found: dict[int, bytes] = {}
        for msg in read_partitions(settings, chain_topic or settings.kafka.chain_topic, [partition],
                                   starts={partition: start}):
            rec = Record.from_wire(msg.value() or b"")
            if rec.origin == origin and first_seq <= rec.seq < end_seq:
                found[rec.seq] = bytes.fromhex(rec.leaf_hash)
        if len(found) == want:
            return b"".join(found[s] for s in range(first_seq, end_seq))
        if start == 0:
            raise InfraError(f"chain {origin}: records {first_seq}..{end_seq - 1} are not all in the chain topic "
                             f"({len(found)} of {want}); cannot show the checkpoint signer the tree's extension")
        window *= 8
