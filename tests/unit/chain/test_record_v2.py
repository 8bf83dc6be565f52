"""Record format v2 (every evidence kind but requests): byte-exact messages, the kind in the
signature's domain, resume, and what the verifier makes of hostile or tampered v2 records."""

from __future__ import annotations

import base64

import orjson
import pytest

from aiaudit.pipeline.chain import record_v2
from aiaudit.pipeline.chain.record import SIG_DOMAIN_V1, ChainHead, Source, leaf_hash
from aiaudit.pipeline.chain.step import InputMessage, chain_messages, kafka_time
from aiaudit.pipeline.errors import ChainBroken
from aiaudit.pipeline.jcs import canonicalize
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.verify.rules import StoredRecord, scan_chain, verify_chain
from tests.unit.helpers import KIND_ORIGIN, build_kind_chain, keyring_of, stored

SIGNER = Ed25519Signer.generate()
MESSAGES = [b'{"score": 0.73, "finding": "x"}', b"\x00\xffnot json at all", b""]


def test_a_kind_chain_holds_each_message_byte_exact_and_verifies():
    records = build_kind_chain(MESSAGES, SIGNER)
    report = verify_chain(stored(records), keyring_of(SIGNER))
    assert report.records == 3 and report.kind == "finding" and report.events == []
    for rec, value in zip(records, MESSAGES):
        obj = record_v2.parse_payload(rec.payload)
        msg = record_v2.Message.from_event(obj["event"])
        assert (msg.value, msg.headers) == (value, (("h", b"v"),)) and obj["kind"] == "finding"
    assert record_v2.parse_payload(records[0].payload)["ts"] == "2026-11-18T11:06:40.000000Z" == kafka_time(
        1_795_000_000_000)


def test_replay_yields_the_same_bytes_and_resume_skips_what_is_chained():
    first = build_kind_chain(MESSAGES, SIGNER)
    assert [r.to_wire() for r in build_kind_chain(MESSAGES, SIGNER)] == [r.to_wire() for r in first]
    head = first[1].next_head(1)  # chained up to offset 1
    again = chain_messages(head, SIGNER, "finding", [InputMessage(v, None, Source("ai.audit.alerts", 0, i))
                                                      for i, v in enumerate(MESSAGES)])
    assert again.skipped == 2 and [r.seq for r in again.records] == [2]


def test_the_kind_is_part_of_what_is_signed():
    rec = build_kind_chain(MESSAGES[:1], SIGNER)[0]
    obj = orjson.loads(rec.payload)
    relabelled = canonicalize({**obj, "kind": "status_change"})
    forged = StoredRecord(rec.origin, 0, relabelled, rec.sig, leaf_hash(relabelled, rec.sig))
    with pytest.raises(ChainBroken) as broken:
        verify_chain([forged], keyring_of(SIGNER))
    assert [f.reason for f in broken.value.failures] == ["bad_signature"]
    # Nor is a v2 signature valid under the v1 domain tag, or for another kind's tag.
    ring = keyring_of(SIGNER)
    assert ring.verify(SIGNER.kid, rec.sig, record_v2.signing_input("finding", rec.payload))
    assert not ring.verify(SIGNER.kid, rec.sig, SIG_DOMAIN_V1 + rec.payload)
    assert not ring.verify(SIGNER.kid, rec.sig, record_v2.signing_input("incident", rec.payload))


def test_an_altered_message_is_located_and_named_by_its_kind():
    records = build_kind_chain(MESSAGES, SIGNER)
    obj = orjson.loads(records[1].payload)
    obj["event"]["value"] = base64.b64encode(b"edited").decode()
    payload = canonicalize(obj)
    rows = stored(records)
    rows[1] = StoredRecord(rows[1].origin, 1, payload, records[1].sig, leaf_hash(payload, records[1].sig),
                           rows[1].columns)
    report = scan_chain(rows, keyring_of(SIGNER), columns_of=None)
    assert report is not None and report.kind == "finding"
    assert [(f.seq, f.reason) for f in report.failures] == [(1, "bad_signature"), (2, "broken_link")]
    assert report.failures[0].line(report.kind).startswith(f"FAIL {KIND_ORIGIN} (finding) seq 1: bad_signature")


@pytest.mark.parametrize("event", [
    [], {"value": "", "key": None}, {"value": "", "key": None, "headers": [], "x": 1},
    {"value": "not base64!", "key": None, "headers": []}, {"value": "", "key": 7, "headers": []},
    {"value": "", "key": None, "headers": [["h"]]}, {"value": "", "key": None, "headers": [["h", "x" * 3]]},
    {"value": "", "key": None, "headers": [["h", ""]] * 65},
])
def test_a_hostile_v2_event_is_a_located_failure_never_a_crash(event):
    head = ChainHead.genesis(KIND_ORIGIN)
    payload = canonicalize({"v": 2, "kind": "finding", "origin": KIND_ORIGIN, "seq": 0, "prev": head.prev,
                            "ts": "2026-11-18T07:06:40.000000Z", "kid": SIGNER.kid,
                            "src": {"topic": "t", "partition": 0, "offset": 0}, "event": event})
    sig = SIGNER.sign(record_v2.signing_input("finding", payload))
    report = scan_chain([StoredRecord(KIND_ORIGIN, 0, payload, sig, leaf_hash(payload, sig))], keyring_of(SIGNER))
    assert report is not None and [f.reason for f in report.failures] == ["malformed_payload"]


@pytest.mark.parametrize("kind", ["", "Finding", "a" * 33, "x/y", "status-change", "1st"])
def test_a_kind_name_outside_its_alphabet_is_refused(kind):
    with pytest.raises(ValueError):
        record_v2.sig_domain(kind)
    payload = orjson.dumps({"v": 2, "kind": kind, "origin": "o", "seq": 0, "prev": "0" * 64, "ts": "t", "kid": "k",
                            "src": {}, "event": {}})
    with pytest.raises(ValueError):
        record_v2.parse_payload(payload)


def _status_keys(signer):
    from aiaudit.pipeline.contract.analysts import AnalystKeys
    from aiaudit.pipeline.keys import KeyRing

    return AnalystKeys({signer.kid: ("alice@acme.example", False)}, KeyRing.from_jwks({"keys": [signer.jwk()]}))


def test_a_status_change_no_analyst_signed_is_a_dead_letter_and_a_chained_one_is_checked_by_the_verifier():
    from datetime import datetime, timezone

    from aiaudit.pipeline.contract.analysts import StatusSigner
    from aiaudit.pipeline.store.alerts import status_message

    alice = Ed25519Signer.generate()
    keys = _status_keys(alice)
    change = status_message("uid-1", "resolved", "alice@acme.example", "", datetime(2026, 11, 18, tzinfo=timezone.utc))
    good = orjson.dumps(StatusSigner(alice, "alice@acme.example").sign(change))
    forged = orjson.dumps({**change, "by": "soc-lead"})

    def admit(msg):
        problem = keys.problem(orjson.loads(msg.value), at="2026-11-18T11:06:40.000000Z")
        return None if problem is None else ("unauthenticated_analyst", problem)

    msgs = [InputMessage(v, None, Source("ai.audit.alert-status", 0, i), (), 1_795_000_000_000)
            for i, v in enumerate([good, forged])]
    result = chain_messages(ChainHead.genesis(KIND_ORIGIN), SIGNER, "status_change", msgs, admit)
    assert [r.seq for r in result.records] == [0] and [d.reason for d in result.dead_letters] == [
        "unauthenticated_analyst"] and result.dead_letters[0].message.value == forged
    ring = keyring_of(SIGNER).with_analysts(keys)
    assert verify_chain(stored(result.records), ring).records == 1
    # Chained without the check (require_analyst_signature=false, or a record-key holder's forgery):
    # the verifier, holding the analyst key set, names it.
    unchecked = chain_messages(ChainHead.genesis(KIND_ORIGIN), SIGNER, "status_change", msgs)
    report = scan_chain(stored(unchecked.records), ring)
    assert report is not None and [(f.seq, f.reason) for f in report.failures] == [(1, "unauthenticated_analyst")]
