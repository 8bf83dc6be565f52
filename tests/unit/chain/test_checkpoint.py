"""Tree-state messages (the checkpoints topic), as a hostile writer to Kafka would send them."""

from __future__ import annotations

import orjson
import pytest

from pipeline.chain import merkle
from pipeline.chain.checkpoint import TreeState, extend
from pipeline.settings import KafkaSettings
from pipeline.sink.rows import rows_of
from tests.unit.sink.test_routing import Msg

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
