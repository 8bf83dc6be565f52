from functools import partial

from aiaudit.pipeline import contract
from aiaudit.pipeline.chain.record import ChainHead, Source
from aiaudit.pipeline.chain.step import InputMessage, chain_batch
from aiaudit.pipeline.emit.synthetic import malformed_messages
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.verify.rules import verify_chain
from tests.unit.contract.test_codec import event
from tests.unit.helpers import ORIGIN, keyring_of, stored

MAX = 256 * 1024
decode = partial(contract.decode, max_bytes=MAX)


def msg(offset, value):
    return InputMessage(value, b"k", Source("ai.requests", 0, offset))


def good(i):
    return contract.encode(event(event_id=f"00000000-0000-4000-8000-{i:012d}"), max_bytes=MAX)


def test_bad_input_is_dead_lettered_and_good_input_around_it_is_chained():
    signer = Ed25519Signer.generate()
    bad = malformed_messages(2, MAX)
    msgs = [msg(0, good(0))] + [msg(1 + i, data) for i, (_, data) in enumerate(bad)] + [msg(10, good(1))]
    result = chain_batch(ChainHead.genesis(ORIGIN), signer, msgs, decode)
    assert [r.seq for r in result.records] == [0, 1]
    assert [d.reason for d in result.dead_letters] == [r for r, _ in bad]
    assert [d.message.src.offset for d in result.dead_letters] == [1, 2, 3, 4, 5, 6]
    assert result.head.next_seq == 2 and result.head.last_src_offset == 10
    verify_chain(stored(result.records), keyring_of(signer))


def test_input_already_chained_is_skipped_on_resume():
    signer = Ed25519Signer.generate()
    first = chain_batch(ChainHead.genesis(ORIGIN), signer, [msg(i, good(i)) for i in range(5)], decode)
    # A restart re-reads offsets 3..7: 3 and 4 are in the chain already.
    again = chain_batch(first.head, signer, [msg(i, good(i)) for i in range(3, 8)], decode)
    assert again.skipped == 2
    assert [r.seq for r in again.records] == [5, 6, 7]
    verify_chain(stored(first.records + again.records), keyring_of(signer))


def test_an_event_without_a_canonical_form_is_dead_lettered_not_fatal():
    signer = Ed25519Signer.generate()

    def decode_with_float(data):
        ev = decode(data)
        return {**ev, "latency_us": 1.5}  # as if a future decoder let a float through

    result = chain_batch(ChainHead.genesis(ORIGIN), signer, [msg(0, good(0))], decode_with_float)
    assert not result.records and [d.reason for d in result.dead_letters] == ["invalid"]
    assert "float" in result.dead_letters[0].detail
