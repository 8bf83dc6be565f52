import base64
import hashlib
import json
from datetime import datetime, timezone

import pytest

from aiaudit.pipeline.chain.record import (
    GENESIS_PREV,
    ChainHead,
    Record,
    Source,
    build_record,
    chain_origin,
    leaf_hash,
    parse_payload,
)
from aiaudit.pipeline.contract import format_ts
from aiaudit.pipeline.jcs import canonicalize
from aiaudit.pipeline.keys import Ed25519Signer
from tests.unit.helpers import ORIGIN, build_chain, events


def test_payload_is_v1_jcs_with_every_field():
    signer = Ed25519Signer.generate()
    ev = events(1)[0]
    rec = build_record(ChainHead.genesis(ORIGIN), signer, ev["occurred_at"], Source("ai.requests", 3, 41), ev)
    obj = json.loads(rec.payload)
    assert obj == {"v": 1, "origin": ORIGIN, "seq": 0, "prev": "0" * 64, "ts": ev["occurred_at"], "kid": signer.kid,
                   "src": {"topic": "ai.requests", "partition": 3, "offset": 41}, "event": ev}
    assert rec.payload == canonicalize(obj)  # stored bytes are the JCS form of themselves


def test_signature_covers_domain_tag_and_payload():
    signer = Ed25519Signer.generate()
    rec = build_chain(1, signer)[0]
    public = signer.private_key.public_key()
    public.verify(rec.sig, b"aiaudit/record/v1\n" + rec.payload)  # raises if wrong
    with pytest.raises(Exception):
        public.verify(rec.sig, rec.payload)  # without the domain tag it is not valid


def test_leaf_hash_is_rfc6962_leaf_of_payload_and_sig():
    rec = build_chain(1, Ed25519Signer.generate())[0]
    assert rec.leaf_hash == hashlib.sha256(b"\x00" + rec.payload + rec.sig).hexdigest()
    assert leaf_hash(rec.payload, rec.sig) == rec.leaf_hash


def test_chain_links_and_replay_is_byte_identical():
    signer = Ed25519Signer.generate()
    a = build_chain(5, signer)
    b = build_chain(5, signer)
    assert [r.to_wire() for r in a] == [r.to_wire() for r in b]  # deterministic: a replay gives the same bytes
    assert parse_payload(a[0].payload)["prev"] == GENESIS_PREV
    for prev, cur in zip(a, a[1:]):
        assert parse_payload(cur.payload)["prev"] == prev.leaf_hash
        assert cur.seq == prev.seq + 1


def test_wire_form_round_trips_exact_bytes():
    rec = build_chain(1, Ed25519Signer.generate())[0]
    wire = json.loads(rec.to_wire())
    assert base64.b64decode(wire["payload"]) == rec.payload
    assert Record.from_wire(rec.to_wire()) == rec


def test_origin_and_time_formats():
    assert chain_origin("acme", "prod", "ai.requests", 7, 2) == "acme/prod/ai.requests/p7/g2"
    with pytest.raises(ValueError):
        chain_origin("ac/me", "prod", "t", 0, 1)
    assert format_ts(datetime(2026, 11, 28, 5, 8, 14, 123456, tzinfo=timezone.utc)) == "2026-11-28T05:08:14.123456Z"
    with pytest.raises(ValueError):
        format_ts(datetime(2026, 11, 28))


def test_parse_payload_refuses_other_shapes():
    with pytest.raises(ValueError):
        parse_payload(b'{"v":2}')
    with pytest.raises(ValueError):
        parse_payload(b"[1]")
