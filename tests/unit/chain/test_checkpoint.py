"""Tree-state messages (the checkpoints topic), as a hostile writer to Kafka would send them."""

from __future__ import annotations

import orjson
import pytest

from aiaudit.pipeline.chain import merkle
from aiaudit.pipeline.chain.checkpoint import TreeState, extend
from aiaudit.pipeline.settings import KafkaSettings
from aiaudit.pipeline.sink.rows import rows_of
from tests.unit.sink.test_rows import Msg

LEAVES = [merkle.hash_leaf(i.to_bytes(2, "big")).hex() for i in range(300)]


def good() -> dict:
    tree, tiles = extend(merkle.CompactRange(), LEAVES)
    return orjson.loads(TreeState("o/e/t/p0/g1", tree, tuple(tiles), None, "2026-11-29T00:00:00.000000Z").to_wire())


def test_a_state_round_trips_with_its_tiles():
    state = TreeState.from_wire(orjson.dumps(good()))
    assert state.size == 300 and state.range.root() == merkle.root_of([bytes.fromhex(h) for h in LEAVES])
    assert [(t[0], t[1]) for t in state.tiles] == [(8, 0)]  # 256 leaves complete one level-8 tile


@pytest.mark.parametrize("mutate", [
    lambda o: o.update(root="00" * 32),  # a root that is not the range's
    lambda o: o.update(size=o["size"] + 1),  # a size the range does not have
    lambda o: o.update(range=["zz" * 32]),  # not hex
    lambda o: o.update(tiles=[[3, 0, "00" * 32]]),  # a level that is not stored
    lambda o: o.update(tiles=[[8, -1, "00" * 32]]),  # a negative index
    lambda o: o.update(tiles=[[8, 0, "00"]]),  # a short hash
    lambda o: o.update(tiles=[[8, 0]]),  # a short entry
    lambda o: o.update(note=5),  # not text
    lambda o: o.update(timestamp=["x"]),  # a signed time that is not a line
    lambda o: o.update(timestamp="\u2014 x " + "A" * 400),  # an unbounded one
    lambda o: o.update(v=2),  # another version
    lambda o: o.pop("origin"),  # a member missing
])
def test_hostile_states_are_refused_and_the_sink_keeps_them_whole(mutate):
    obj = good()
    mutate(obj)
    data = orjson.dumps(obj)
    with pytest.raises(ValueError):
        TreeState.from_wire(data)
    k = KafkaSettings()
    rows = rows_of([Msg(k.checkpoints_topic, data)], k)
    assert rows.get("checkpoints") == [] and len(rows.get("dead_letters")) == 1


def test_a_state_with_a_signed_time_round_trips_and_one_from_before_heartbeats_still_parses():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from aiaudit.pipeline.chain.checkpoint import log_clock, timestamp_line
    from aiaudit.pipeline.chain.note import SIG_ED25519, NoteSigner, cosignature_time

    tree, _ = extend(merkle.CompactRange(), LEAVES)
    clock = log_clock("o/e/t/p0/g1", NoteSigner.local("o/e/t/p0/g1", SIG_ED25519, Ed25519PrivateKey.generate()))
    line = timestamp_line("o/e/t/p0/g1", tree, clock, 1_800_000_000)
    assert cosignature_time(line) == ("o/e/t/p0/g1", 1_800_000_000)
    obj = good()
    obj["timestamp"] = line
    assert TreeState.from_wire(orjson.dumps(obj)).timestamp == line
    obj.pop("timestamp")  # written before heartbeats existed
    assert TreeState.from_wire(orjson.dumps(obj)).timestamp is None


def test_the_chain_worker_refuses_to_resume_from_a_range_its_signature_does_not_cover():
    """A signed tree state whose compact range was swapped (a consistent but other range, root
    recomputed) is refused on resume; the genuine one, signed by note or by timestamp, passes."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from aiaudit.pipeline.chain.checkpoint import checkpoint_note, log_clock, timestamp_line
    from aiaudit.pipeline.chain.note import SIG_ED25519, NoteSigner
    from aiaudit.pipeline.chain.resume import signed_root_problem
    from aiaudit.pipeline.keys import raw_public

    key = Ed25519PrivateKey.generate()
    origin = "o/e/t/p0/g1"
    notary = NoteSigner.local(origin, SIG_ED25519, key)
    tree, tiles = extend(merkle.CompactRange(), LEAVES)
    other, _ = extend(merkle.CompactRange(), LEAVES[1:] + LEAVES[:1])
    note = checkpoint_note(origin, tree, notary)
    stamp = timestamp_line(origin, tree, log_clock(origin, notary), 1_795_950_000)
    at = "2026-11-29T00:00:00.000000Z"
    pub = raw_public(key)
    assert signed_root_problem(TreeState(origin, tree, tuple(tiles), note, at), pub) is None
    assert signed_root_problem(TreeState(origin, tree, tuple(tiles), None, at, stamp), pub) is None
    assert "signed checkpoint is" in signed_root_problem(TreeState(origin, other, (), note, at), pub)
    assert "does not verify" in signed_root_problem(TreeState(origin, other, (), None, at, stamp), pub)
    foreign = raw_public(Ed25519PrivateKey.generate())
    assert "does not verify" in signed_root_problem(TreeState(origin, tree, tuple(tiles), note, at), foreign)
