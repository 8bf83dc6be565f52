"""The checkpoint signer signs only extensions of what it signed, and reads requests strictly."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline.chain.merkle import CompactRange, hash_leaf
from aiaudit.pipeline.chain.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Checkpoint,
    NoteSigner,
    Verifier,
    cosignatures,
    open_checkpoint,
)
from aiaudit.pipeline.signer.core import MAX_LEAVES, BadRequest, Signed, decide, parse_request, request_body

ORIGIN = "acme/prod/ai.requests/p0/g1"
KEY = Ed25519PrivateKey.generate()
NOTE = NoteSigner.local(ORIGIN, SIG_ED25519, KEY)
CLOCK = NoteSigner.local(ORIGIN, SIG_COSIGNATURE_V1, KEY)


def leaves(n: int, tag: bytes = b"r") -> list[bytes]:
    return [hash_leaf(tag + i.to_bytes(8, "big")) for i in range(n)]


def tree_of(hashes: list[bytes]) -> CompactRange:
    t = CompactRange()
    for h in hashes:
        t.append(h)
    return t


def ask(base: CompactRange, new: list[bytes], last: Signed | None, **kw):
    return decide(parse_request(request_body(ORIGIN, base, b"".join(new))), last, NOTE, CLOCK, 1_800_000_000, **kw)


def test_a_new_chain_is_signed_from_size_zero_and_the_answer_verifies():
    hs = leaves(5)
    a = ask(CompactRange(), hs, None)
    assert a.status == 200 and a.signed == Signed(5, tuple(tree_of(hs).hashes))
    cp = open_checkpoint(a.body["note"], Verifier(ORIGIN, SIG_ED25519, NOTE.public_key))
    assert (cp.size, cp.root) == (5, tree_of(hs).root())
    stamped = Checkpoint(ORIGIN, 5, cp.root).text() + "\n" + a.body["timestamp"]  # as the verifier reads it
    assert ORIGIN in cosignatures(stamped, [Verifier(ORIGIN, SIG_COSIGNATURE_V1, NOTE.public_key)])


def test_an_extension_is_signed_from_any_earlier_size_the_worker_knows():
    hs = leaves(20)
    last = ask(CompactRange(), hs[:13], None).signed
    assert ask(tree_of(hs[:13]), hs[13:], last).status == 200
    # from an older base (the worker's transaction with size 13 aborted): checked at 13, signed at 20
    a = ask(tree_of(hs[:9]), hs[9:], last)
    assert a.status == 200 and a.body["size"] == 20
    # a heartbeat: nothing new, the same size signed with a new time
    assert ask(tree_of(hs[:13]), [], last).status == 200


def test_a_rewrite_of_signed_history_is_refused_whoever_asks():
    hs = leaves(20)
    last = ask(CompactRange(), hs[:13], None).signed
    forged = hs[:7] + leaves(13, b"forged")[7:]
    a = ask(tree_of(forged[:9]), forged[9:], last)  # reaches 13 with another root
    assert a.status == 409 and a.body["reason"].startswith("not an extension") and a.signed is None
    a = ask(tree_of(forged[:13]), hs[13:], last)  # claims another tree at exactly 13
    assert a.status == 409 and a.body["reason"].startswith("not an extension")
    a = ask(CompactRange(), forged, last)  # from scratch, a whole new history
    assert a.status == 409 and a.body["signed_size"] == 13


def test_behind_and_past_are_told_apart():
    hs = leaves(20)
    last = ask(CompactRange(), hs[:13], None).signed
    a = ask(tree_of(hs[:5]), hs[5:10], last)
    assert a.status == 409 and a.body["reason"].startswith("behind") and a.body["signed_size"] == 13
    a = ask(tree_of(hs[:15]), hs[15:], last)  # a base the signer never signed: its state was rolled back?
    assert a.status == 409 and "past the size" in a.body["reason"]


def test_an_existing_chain_is_taken_over_only_with_adopt():
    hs = leaves(8)
    assert ask(tree_of(hs[:6]), hs[6:], None).status == 409
    assert ask(tree_of(hs[:6]), hs[6:], None, adopt=True).status == 200


@pytest.mark.parametrize("body", [
    b"", b"[]", b"not json", b'{"origin": "o"}',
    orjson.dumps({"origin": "o", "old_size": 1, "old_range": [], "leaves": ""}),  # range does not fit the size
    orjson.dumps({"origin": "o", "old_size": -1, "old_range": [], "leaves": ""}),
    orjson.dumps({"origin": "o", "old_size": True, "old_range": [], "leaves": ""}),
    orjson.dumps({"origin": "o", "old_size": 0, "old_range": [], "leaves": "abc"}),  # not base64 of 32-byte hashes
    orjson.dumps({"origin": "o", "old_size": 0, "old_range": [], "leaves": base64.b64encode(b"x" * 33).decode()}),
    orjson.dumps({"origin": "two words", "old_size": 0, "old_range": [], "leaves": ""}),
    orjson.dumps({"origin": "o" * 600, "old_size": 0, "old_range": [], "leaves": ""}),
    orjson.dumps({"origin": "o", "old_size": 1, "old_range": ["AAAA"], "leaves": ""}),
    orjson.dumps({"origin": "o", "old_size": 0, "old_range": [], "leaves": "", "extra": 1}),
])
def test_malformed_requests_are_refused_by_name(body):
    with pytest.raises(BadRequest):
        parse_request(body)


def test_too_many_leaves_are_refused():
    raw = hashlib.sha256(b"x").digest() * (MAX_LEAVES + 1)
    with pytest.raises(BadRequest):
        parse_request(orjson.dumps({"origin": "o", "old_size": 0, "old_range": [], "leaves": base64.b64encode(raw).decode()}))


def test_a_final_checkpoint_closes_the_chain_at_the_signer():
    from aiaudit.pipeline.chain.checkpoint import open_final

    hs = leaves(9)
    last = ask(CompactRange(), hs, None).signed
    a = decide(parse_request(request_body(ORIGIN, tree_of(hs), b"", final=True)), last, NOTE, CLOCK, 1_800_000_000)
    assert a.status == 200 and a.signed is not None and a.signed.final
    cp = open_final(a.body["note"], ORIGIN, [Verifier(ORIGIN, SIG_ED25519, NOTE.public_key)])
    assert (cp.size, cp.root) == (9, tree_of(hs).root())
    with pytest.raises(Exception):  # a final note is never an ordinary checkpoint of the origin
        open_checkpoint(a.body["note"], Verifier(ORIGIN, SIG_ED25519, NOTE.public_key))
    more = ask(tree_of(hs), leaves(3, b"more"), a.signed)
    assert more.status == 409 and more.body["reason"].startswith("closed")
