"""Tamper tests: for each rule, one input that breaks exactly that rule, and the failure it must give."""

import dataclasses
import json

import pytest

from aiaudit.pipeline.chain.record import ChainHead, Source, build_record, leaf_hash, parse_payload
from aiaudit.pipeline.errors import ChainBroken
from aiaudit.pipeline.export.format import ExportFile
from aiaudit.pipeline.jcs import canonicalize
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.store.evidence import columns_of
from aiaudit.pipeline.verify.reconcile import reconcile_emitters
from aiaudit.pipeline.verify.rules import scan_chain, sort_checking_order, verify_chain
from aiaudit.pipeline.verify.run import verify_export, verify_slices
from aiaudit.pipeline.verify.trust import Trust
from tests.unit.helpers import build_chain, keyring_of, stored

SIGNER = Ed25519Signer.generate()
RING = keyring_of(SIGNER)


def chain(n=8, **kw):
    return stored(build_chain(n, SIGNER), **kw)


def failures_of(records, ring=RING, **kw):
    with pytest.raises(ChainBroken) as info:
        verify_chain(records, ring, columns_of=columns_of, **kw)
    return [(f.seq, f.reason) for f in info.value.failures]


def test_untouched_chain_verifies():
    report = verify_chain(chain(), RING, columns_of=columns_of)
    assert report.records == 8 and report.kids == {SIGNER.kid} and not report.failures


def test_flipped_byte_in_payload_breaks_signature_and_hash():
    recs = chain()
    p = bytearray(recs[3].payload)
    i = p.index(b'"route":"') + 10
    p[i] ^= 0x01
    recs[3] = dataclasses.replace(recs[3], payload=bytes(p))
    got = failures_of(recs)
    assert (3, "bad_signature") in got and (3, "hash_mismatch") in got
    assert all(seq == 3 for seq, _ in got)


def test_dropped_record_is_a_gap_at_its_seq():
    recs = chain()
    del recs[4]
    assert failures_of(recs) == [(4, "gap")]


def test_truncated_tail_shows_as_emitter_gap():
    recs = chain()[:-2]
    report = verify_chain(recs, RING)  # the chain itself still holds ...
    _, gaps = reconcile_emitters(report.events + [("test-emitter", 7, "x")])  # ... but the edge numbered seq 7
    assert [(f.seq, f.reason) for f in gaps] == [(6, "emitter_gap")]


def test_swapped_pair_in_an_export_is_a_reorder():
    recs = chain(with_columns=False)
    recs[2], recs[3] = recs[3], recs[2]
    report = verify_export(ExportFile(records=recs), Trust(RING), allow_unanchored=True)
    assert [(f.seq, f.reason) for f in report.failures] == [(2, "reorder")]


def test_swapped_contents_in_store_are_column_mismatches():
    recs = chain()
    a, b = recs[2], recs[3]
    recs[2] = dataclasses.replace(b, seq=2, columns=a.columns)
    recs[3] = dataclasses.replace(a, seq=3, columns=b.columns)
    got = failures_of(recs)
    assert (2, "column_mismatch") in got and (3, "column_mismatch") in got


def test_inserted_forged_record_with_a_foreign_key():
    recs = build_chain(6, SIGNER)
    mallory = Ed25519Signer.generate()
    head = ChainHead(recs[2].origin, 3, recs[2].leaf_hash, 102)
    ev = parse_payload(recs[3].payload)["event"]
    forged = build_record(head, mallory, ev["occurred_at"], Source("ai.requests", 0, 102), {**ev, "decision": "allow"})
    got = failures_of(stored(recs[:3] + [forged] + recs[3:]))
    assert (3, "unknown_key") in got and (3, "fork") in got


def test_forged_record_claiming_the_real_kid_fails_signature():
    recs = build_chain(3, SIGNER)
    mallory = Ed25519Signer.generate()
    obj = parse_payload(recs[1].payload)
    obj["event"]["decision"] = "deny"
    payload = canonicalize(obj)  # same kid, same seq and prev, edited event
    sig = mallory.sign(b"aiaudit/record/v1\n" + payload)
    forged = dataclasses.replace(recs[1], payload=payload, sig=sig, leaf_hash=leaf_hash(payload, sig))
    got = failures_of(stored([recs[0], forged, recs[2]]))
    assert (1, "bad_signature") in got
    assert (2, "broken_link") in got  # seq 2 still commits to the original seq 1


def test_foreign_key_alone_is_unknown_key():
    other = Ed25519Signer.generate()
    assert {r for _, r in failures_of(chain(3), ring=keyring_of(other))} == {"unknown_key"}


def test_edited_typed_column_is_located():
    recs = chain()
    recs[5] = dataclasses.replace(recs[5], columns={**recs[5].columns, "actor_id": "someone-else@acme.example"})
    assert failures_of(recs) == [(5, "column_mismatch")]


def test_truncated_payload_is_malformed():
    recs = chain()
    recs[1] = dataclasses.replace(recs[1], payload=recs[1].payload[:-10])
    assert sorted(failures_of(recs)) == [(1, "hash_mismatch"), (1, "malformed_payload")]


def test_payload_that_is_not_canonical():
    recs = build_chain(2, SIGNER)
    obj = parse_payload(recs[1].payload)
    payload = json.dumps(obj, indent=1).encode()  # same JSON, other bytes, validly signed
    sig = SIGNER.sign(b"aiaudit/record/v1\n" + payload)
    recs[1] = dataclasses.replace(recs[1], payload=payload, sig=sig, leaf_hash=leaf_hash(payload, sig))
    assert failures_of(stored(recs)) == [(1, "not_canonical")]


def test_broken_prev_link():
    recs = build_chain(3, SIGNER)
    obj = parse_payload(recs[2].payload)
    obj["prev"] = "ab" * 32
    payload = canonicalize(obj)
    sig = SIGNER.sign(b"aiaudit/record/v1\n" + payload)  # even a key holder cannot relink silently
    recs[2] = dataclasses.replace(recs[2], payload=payload, sig=sig, leaf_hash=leaf_hash(payload, sig))
    assert failures_of(stored(recs)) == [(2, "broken_link")]


def test_exact_duplicate_is_benign_and_counted():
    recs = chain(4)
    report = verify_chain(recs[:2] + [recs[1]] + recs[2:], RING, columns_of=columns_of)
    assert report.duplicates == 1 and report.records == 4


def test_same_seq_other_record_is_a_fork():
    recs = chain(4)
    other = stored(build_chain(4, Ed25519Signer.generate()))[1]  # a different valid-looking record at seq 1
    got = failures_of(recs[:2] + [other] + recs[2:])
    assert got == [(1, "fork")]


def test_stored_hash_edited_is_hash_mismatch():
    recs = chain(3)
    recs[0] = dataclasses.replace(recs[0], leaf_hash="f" * 64)
    assert failures_of(recs) == [(0, "hash_mismatch"), (1, "broken_link")]


def test_chain_not_starting_at_zero_is_a_gap():
    assert failures_of(chain(4)[1:]) == [(0, "gap")]


def test_slice_from_the_middle_verifies_as_a_segment():
    report = verify_chain(chain(6)[2:], RING, segment=True)
    assert report.records == 4


def test_empty_input_is_an_error_unless_allowed():
    with pytest.raises(ChainBroken, match="no records"):
        verify_chain([], RING)
    assert verify_chain([], RING, allow_empty=True).records == 0


def test_key_rotation_keeps_old_records_verifiable():
    old, new = Ed25519Signer.generate(), Ed25519Signer.generate()
    recs = stored(build_chain(6, old, signers=[old, new]))
    report = verify_chain(recs, keyring_of(old, new), columns_of=columns_of)
    assert report.kids == {old.kid, new.kid}
    # Dropping the old key from the JWKS would break exactly the old records.
    assert {s for s, r in failures_of(recs, ring=keyring_of(new))} == {0, 1, 2}


def test_one_event_chained_twice_is_reported():
    recs = build_chain(3, SIGNER)
    ev = parse_payload(recs[0].payload)["event"]
    head = recs[-1].next_head(200)
    again = build_record(head, SIGNER, ev["occurred_at"], Source("ai.requests", 0, 200), ev)
    assert failures_of(stored(recs + [again])) == [(3, "duplicate_event")]


def test_sort_checking_order_reports_each_late_record():
    recs = chain(5, with_columns=False)
    shuffled = [recs[0], recs[3], recs[1], recs[2], recs[4]]
    ordered, failures = sort_checking_order(shuffled)
    assert [r.seq for r in ordered] == [0, 1, 2, 3, 4]
    assert [(f.seq, f.reason) for f in failures] == [(1, "reorder"), (2, "reorder")]


def test_emitter_reconciliation_finds_ranges():
    events = [("e1", n, f"id{n}") for n in (0, 1, 2, 5, 6, 9)] + [("e2", 0, "x")]
    count, gaps = reconcile_emitters(events)
    assert count == 2
    assert [(f.origin, f.seq, f.detail.split(" ")[1]) for f in gaps] == [("emitter:e1", 3, "3..4"), ("emitter:e1", 7, "7..8")]


def test_time_window_reconciles_only_events_inside_it():
    from aiaudit.pipeline.verify.run import VerifyReport

    report = VerifyReport()
    chain_report = verify_chain(chain(8), RING)
    report.add_chain(chain_report)
    ts = [e[3] for e in chain_report.events]
    # Events 2..5 of the emitter in the window: contiguous, no gap, although 0..1 are not counted.
    report.reconcile(start_at_zero=False, window=(ts[2], ts[6]))
    assert report.emitters == 1 and not report.failures
    # Without the window, an event missing at seq 4 of the emitter is a gap.
    gappy = VerifyReport()
    gappy.add_chain(verify_chain(chain(8), RING))
    gappy.chains[0].events.pop(4)
    gappy.reconcile(start_at_zero=True)
    assert [(f.seq, f.reason) for f in gappy.failures] == [(4, "emitter_gap")]


def _resigned(rec, mutate):
    """The record with its payload object changed by `mutate`, re-signed with the real key: only the
    contents are wrong, so the verifier gets past the signature to the shape."""
    obj = json.loads(rec.payload)
    mutate(obj)
    payload = canonicalize(obj)
    sig = SIGNER.sign(b"aiaudit/record/v1\n" + payload)
    return dataclasses.replace(rec, payload=payload, sig=sig, leaf_hash=leaf_hash(payload, sig))


MALFORMED = {
    "event without emitter_id": lambda o: o["event"].pop("emitter_id"),
    "emitter_seq a string": lambda o: o["event"].update(emitter_seq="7"),
    "event a list": lambda o: o.update(event=[1, 2]),
    "seq a string": lambda o: o.update(seq="3"),
    "src a list": lambda o: o.update(src=["t", 0, 1]),
    "prev not hex": lambda o: o.update(prev="z" * 64),
    "origin a number": lambda o: o.update(origin=5),
    "event without actor": lambda o: o["event"].pop("actor"),
    "event_id a number": lambda o: o["event"].update(event_id=17),
}


@pytest.mark.parametrize("what", sorted(MALFORMED))
def test_a_malformed_stored_payload_is_a_located_failure_never_a_crash(what):
    recs = chain()
    recs[3] = _resigned(recs[3], MALFORMED[what])
    got = failures_of(recs)
    assert (3, "malformed_payload") in got or (3, "column_mismatch") in got, got
    assert all(seq in (3, 4) for seq, _ in got), got  # located at the record (and its successor's link)


def test_a_huge_emitter_seq_is_one_gap_not_a_memory_error():
    recs = chain()
    recs[7] = _resigned(recs[7], lambda o: o["event"].update(emitter_seq=2**53 - 1))
    _, gaps = reconcile_emitters(scan_chain(recs, RING).events)
    assert [(f.seq, f.reason, f.detail) for f in gaps] == [
        (7, "emitter_gap", f"emitter_seq 7..{2**53 - 2} sent but not in any chain")]


def test_every_chain_is_still_checked_when_one_holds_a_malformed_row():
    other_chain = stored(build_chain(5, SIGNER, origin="acme/test/ai.requests/p1/g1"))  # type: ignore[arg-type]  # a ChainId is a str
    bad = chain()
    bad[2] = _resigned(bad[2], MALFORMED["event without emitter_id"])
    by_origin = {bad[0].origin: bad, other_chain[0].origin: other_chain}
    report = verify_slices([(o, 0, len(r) - 1) for o, r in by_origin.items()], lambda o, a, b: by_origin[o][a:b + 1],
                           RING, whole=True)
    assert len(report.chains) == 2 and report.records == 13
    assert [(f.origin, f.seq, f.reason) for f in report.failures if f.reason == "malformed_payload"] == [
        (bad[0].origin, 2, "malformed_payload")]
    assert json.loads(report.json_text())["ok"] is False


def test_an_emitter_that_restarts_its_numbering_is_reported():
    events = [("edge-1", 0, "a", "t"), ("edge-1", 1, "b", "t"), ("edge-1", 0, "c", "t"), ("edge-1", 0, "d", "t"),
              ("edge-2", 0, "e", "t"), ("edge-2", 0, "e", "t")]  # the same event twice is a duplicate, not a reuse
    n, failures = reconcile_emitters(events)
    assert n == 2
    assert [(f.origin, f.seq, f.reason) for f in failures] == [("emitter:edge-1", 0, "emitter_seq_reused")] * 2
    assert "events a and c" in failures[0].detail


def _emitter_chain(emitter: Ed25519Signer, n: int, *, tamper_at: int | None = None, unsigned_at: int | None = None):
    """A chain whose events the emitter signed; one event changed after signing (an insider holding
    the record key re-signs the record, not the event), or one left unsigned."""
    from aiaudit.pipeline.contract.signature import SIGNATURE_FIELD, signature_member
    from tests.unit.helpers import ORIGIN, events

    head, records = ChainHead.genesis(ORIGIN), []
    for i, ev in enumerate(events(n, emitter_id="billing-1")):
        ev = {**ev, SIGNATURE_FIELD: None}
        ev[SIGNATURE_FIELD] = None if i == unsigned_at else signature_member(emitter, ev)
        if i == tamper_at:
            ev = {**ev, "decision": "allow" if ev["decision"] != "allow" else "deny"}
        rec = build_record(head, SIGNER, ev["occurred_at"], Source("ai.requests", 0, i), ev)
        records.append(rec)
        head = rec.next_head(i)
    return stored(records)


def _ring_with_emitter(emitter: Ed25519Signer, *, required: bool = False):
    from aiaudit.pipeline.contract.emitter_keys import emitter_keys_from

    doc = {"keys": [{**emitter.jwk(), "emitter": "billing"}]}
    return RING.with_emitters(emitter_keys_from(doc, "set", required=required))


def test_the_record_key_alone_cannot_make_an_event_its_emitter_did_not_sign():
    emitter = Ed25519Signer.generate()
    ring = _ring_with_emitter(emitter)
    verify_chain(_emitter_chain(emitter, 6), ring, columns_of=columns_of)
    assert failures_of(_emitter_chain(emitter, 6, tamper_at=3), ring) == [(3, "unauthenticated_emitter")]
    # the same tampered chain passes a verifier without the emitter key set: the check is what catches it
    verify_chain(_emitter_chain(emitter, 6, tamper_at=3), RING, columns_of=columns_of)


def test_unsigned_events_fail_only_where_signatures_are_required():
    emitter = Ed25519Signer.generate()
    records = _emitter_chain(emitter, 5, unsigned_at=2)
    verify_chain(records, _ring_with_emitter(emitter), columns_of=columns_of)
    assert failures_of(records, _ring_with_emitter(emitter, required=True)) == [(2, "unauthenticated_emitter")]


def test_the_emitter_check_runs_in_the_parallel_checker_too():
    import pickle

    emitter = Ed25519Signer.generate()
    ring = pickle.loads(pickle.dumps(_ring_with_emitter(emitter)))  # what a verification worker receives
    assert failures_of(_emitter_chain(emitter, 4, tamper_at=1), ring) == [(1, "unauthenticated_emitter")]
