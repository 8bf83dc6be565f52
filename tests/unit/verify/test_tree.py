"""Checkpoints against records, one rule per test: what deleting the newest records, deleting a
chain, or rewriting history with the real record key looks like to the verifier."""

from __future__ import annotations

import dataclasses
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline.chain.checkpoint import checkpoint_note, extend
from aiaudit.pipeline.chain.merkle import CompactRange
from aiaudit.pipeline.chain.note import SIG_ED25519, NoteSigner
from aiaudit.pipeline.chain.record import ChainHead, Source, build_record
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.verify.run import verify_slices
from aiaudit.pipeline.verify.tree import open_checkpoints, utc_text
from tests.unit.helpers import ORIGIN, build_chain, events, keyring_of, stored

SIGNER = Ed25519Signer.generate()
RING = keyring_of(SIGNER)
CP_KEY = Ed25519PrivateKey.generate()
CP_PUB = NoteSigner.local("x", SIG_ED25519, CP_KEY).public_key


def notes_for(records, sizes, key=CP_KEY):
    """Signed checkpoints of the chain at each size, as the chain worker writes them."""
    out, tree = [], CompactRange()
    for i, rec in enumerate(records, 1):
        tree, _ = extend(tree, [rec.leaf_hash])
        if i in sizes:
            out.append((i, checkpoint_note(rec.origin, tree, NoteSigner.local(rec.origin, SIG_ED25519, key))))
    return out


def run(records_by_origin, notes_by_origin):
    loads = {o: stored(r) for o, r in records_by_origin.items()}
    slices = [(o, 0, len(r) - 1) for o, r in loads.items() if r]
    return verify_slices(slices, lambda o, a, b: loads[o][a:b + 1], RING, whole=True, reconcile=False,
                         checkpoints=lambda o: open_checkpoints(o, notes_by_origin.get(o, []), CP_PUB),
                         checkpointed=[o for o, n in notes_by_origin.items() if n])


def reasons(report):
    return [(f.origin, f.seq, f.reason) for f in report.failures]


def test_untouched_chain_matches_every_checkpoint():
    recs = build_chain(10, SIGNER)
    report = run({ORIGIN: recs}, {ORIGIN: notes_for(recs, {3, 8, 10})})
    assert report.ok and report.checkpoints == 3 and report.warnings == []


def test_deleting_the_newest_records_is_truncated_with_the_range():
    recs = build_chain(10, SIGNER)
    report = run({ORIGIN: recs[:7]}, {ORIGIN: notes_for(recs, {4, 10})})
    assert reasons(report) == [(ORIGIN, 7, "truncated")]
    assert "seq 7..9 missing" in report.failures[0].detail


def test_deleting_a_whole_chain_is_named():
    recs = build_chain(4, SIGNER)
    other = "acme/test/ai.requests/p1/g1"
    report = run({ORIGIN: recs}, {ORIGIN: notes_for(recs, {4}), other: [(2, notes_for(
        build_chain(2, SIGNER, origin=other), {2})[0][1])]})  # type: ignore[arg-type]  # a ChainId is a str
    assert reasons(report) == [(other, 0, "truncated")] and "no records" in report.failures[0].detail
    assert len(report.chains) == 2


def test_rewriting_history_with_the_real_record_key_breaks_the_signed_root():
    recs = build_chain(8, SIGNER)
    notes = notes_for(recs, {8})
    # The insider re-signs a changed record 2 and re-chains everything after it with the real key.
    evs = events(8)
    evs[2] = {**evs[2], "decision": "allow" if evs[2]["decision"] != "allow" else "deny"}
    head, forged = ChainHead.genesis(ORIGIN), []
    for i, ev in enumerate(evs):
        rec = build_record(head, SIGNER, ev["occurred_at"], Source("ai.requests", 0, 100 + i), ev)
        forged.append(rec)
        head = rec.next_head(100 + i)
    assert forged[2].leaf_hash != recs[2].leaf_hash
    report = run({ORIGIN: forged}, {ORIGIN: notes})
    assert reasons(report) == [(ORIGIN, 7, "root_mismatch")]  # every record verifies on its own


def test_a_checkpoint_not_signed_by_the_pinned_key_is_bad():
    recs = build_chain(5, SIGNER)
    report = run({ORIGIN: recs}, {ORIGIN: notes_for(recs, {5}, key=Ed25519PrivateKey.generate())})
    assert [r for _, _, r in reasons(report)] == ["bad_checkpoint"]


def test_a_checkpoint_stored_at_another_size_is_bad():
    recs = build_chain(5, SIGNER)
    (_, note), = notes_for(recs, {5})
    report = run({ORIGIN: recs}, {ORIGIN: [(4, note)]})
    assert [r for _, _, r in reasons(report)] == ["bad_checkpoint"]


def test_records_after_the_newest_checkpoint_are_a_warning_not_a_failure():
    recs = build_chain(9, SIGNER)
    report = run({ORIGIN: recs}, {ORIGIN: notes_for(recs, {6})})
    assert report.ok and report.warnings == [
        f"WARN {ORIGIN}: 3 record(s) after the newest checkpoint (size 6) are not yet checkpointed"]
    assert json.loads(report.json_text())["warnings"] == report.warnings


def test_an_exact_duplicate_row_does_not_disturb_the_tree():
    recs = build_chain(6, SIGNER)
    with_dup = recs[:3] + [dataclasses.replace(recs[2])] + recs[3:]
    report = run({ORIGIN: with_dup}, {ORIGIN: notes_for(recs, {6})})
    assert report.ok and report.checkpoints == 1


def test_a_rewrite_with_reissued_checkpoints_passes_the_store_but_not_the_witness():
    recs = build_chain(8, SIGNER)
    evs = events(8)
    evs[3] = {**evs[3], "route": "/rewritten"}
    head, forged = ChainHead.genesis(ORIGIN), []
    for i, ev in enumerate(evs):
        rec = build_record(head, SIGNER, ev["occurred_at"], Source("ai.requests", 0, 100 + i), ev)
        forged.append(rec)
        head = rec.next_head(100 + i)
    reissued = notes_for(forged, {8})  # the insider holds the checkpoint key too
    assert run({ORIGIN: forged}, {ORIGIN: reissued}).ok  # the store alone cannot tell
    tree = CompactRange()
    for r in recs:
        tree.append(bytes.fromhex(r.leaf_hash))
    check = open_checkpoints(ORIGIN, reissued, CP_PUB)
    check.witnessed[8] = (tree.root(), "witness.example/w1")  # what the witness cosigned before the rewrite
    loads = stored(forged)
    report = verify_slices([(ORIGIN, 0, 7)], lambda o, a, b: loads[a:b + 1], RING, whole=True, reconcile=False,
                           checkpoints=lambda o: check, checkpointed=[ORIGIN])
    assert reasons(report) == [(ORIGIN, 7, "witness_mismatch")]


# --- signed times: the log's timestamps, heartbeats and the tail rule ----------------------------

CLOCK_NOW = 1_800_000_000


def stamps_for(records, sizes, times, key=CP_KEY):
    """The log's signed times (tlog-cosignature lines by the checkpoint key) at each size."""
    from aiaudit.pipeline.chain.checkpoint import log_clock, timestamp_line

    out, tree = [], CompactRange()
    for i, rec in enumerate(records, 1):
        tree, _ = extend(tree, [rec.leaf_hash])
        if i in sizes:
            clock = log_clock(rec.origin, NoteSigner.local(rec.origin, SIG_ED25519, key))
            out += [(i, timestamp_line(rec.origin, tree, clock, t)) for t in times]
    return out


def test_signed_times_give_the_newest_time_and_the_tail_rule_holds_when_recent():
    recs = build_chain(10, SIGNER)
    check = open_checkpoints(ORIGIN, notes_for(recs, {4, 10}), CP_PUB,
                             cosigs=stamps_for(recs, {4}, [CLOCK_NOW - 100]) + stamps_for(recs, {10}, [CLOCK_NOW - 60, CLOCK_NOW - 5]))
    assert not check.failures and check.signed_time == CLOCK_NOW - 5
    check.tail_rule(CLOCK_NOW, 30)
    assert not check.failures


def test_a_logger_that_stopped_is_stale_at_the_end_of_the_window():
    recs = build_chain(10, SIGNER)
    check = open_checkpoints(ORIGIN, notes_for(recs, {10}), CP_PUB, cosigs=stamps_for(recs, {10}, [CLOCK_NOW - 3600]))
    check.tail_rule(CLOCK_NOW, 900)
    assert [(f.seq, f.reason) for f in check.failures] == [(10, "stale")]
    detail = check.failures[0].detail
    assert f"newest signed time {utc_text(CLOCK_NOW - 3600)} is 3600s before {utc_text(CLOCK_NOW)}" in detail
    assert f"judged --as-of {utc_text(CLOCK_NOW - 3600 + 900)} or earlier, it passes" in detail


def test_a_chain_without_any_signed_time_is_stale_when_the_rule_applies():
    recs = build_chain(5, SIGNER)
    check = open_checkpoints(ORIGIN, notes_for(recs, {5}), CP_PUB)
    check.tail_rule(CLOCK_NOW, 900)
    assert [f.reason for f in check.failures] == ["stale"]


def test_a_signed_time_under_a_foreign_key_or_for_an_unsigned_size_is_bad():
    recs = build_chain(6, SIGNER)
    foreign = stamps_for(recs, {6}, [CLOCK_NOW], key=Ed25519PrivateKey.generate())
    unsigned = stamps_for(recs, {3}, [CLOCK_NOW])
    check = open_checkpoints(ORIGIN, notes_for(recs, {6}), CP_PUB, cosigs=foreign + unsigned)
    assert [f.reason for f in check.failures] == ["bad_checkpoint", "bad_checkpoint"]
    assert check.signed_time is None  # neither counts


def test_the_logs_own_signed_time_is_not_a_witness_cosignature():
    recs = build_chain(6, SIGNER)
    check = open_checkpoints(ORIGIN, notes_for(recs, {6}), CP_PUB, cosigs=stamps_for(recs, {6}, [CLOCK_NOW]),
                             min_cosignatures=1)
    check.finish_sample()  # the cosignature rule alone (no records fed)
    assert [f.reason for f in check.failures] == ["unwitnessed"]


def test_a_witness_cosignature_time_counts_for_the_tail_rule():
    from aiaudit.pipeline.chain.note import SIG_COSIGNATURE_V1, Checkpoint, cosign, split_note

    recs = build_chain(6, SIGNER)
    witness = NoteSigner.local("witness.example/w1", SIG_COSIGNATURE_V1, Ed25519PrivateKey.generate())
    (size, note), = notes_for(recs, {6})
    line = cosign(split_note(note)[0], witness, CLOCK_NOW - 10).line()
    check = open_checkpoints(ORIGIN, [(size, note)], CP_PUB, cosigs=[(6, line)], witnesses=[witness.verifier])
    assert check.signed_time == CLOCK_NOW - 10 and Checkpoint.parse(split_note(note)[0]).size == 6
    check.tail_rule(CLOCK_NOW, 60)
    assert not check.failures


def _stored_states(recs, sizes):
    """Tree-state rows as the chain worker stores them (size, root, compact range, tile levels, indexes, hashes)."""
    from aiaudit.pipeline.chain.checkpoint import extend
    from aiaudit.pipeline.chain.merkle import CompactRange

    rows, tree = [], CompactRange()
    done = 0
    for size in sorted(sizes):
        tree, tiles = extend(tree, [r.leaf_hash for r in recs[done:size]])
        done = size
        rows.append([size, tree.root().hex(), [h.hex() for h in tree.hashes], [t[0] for t in tiles],
                     [t[1] for t in tiles], [t[2].hex() for t in tiles]])
    return rows


def test_stored_tree_states_and_tiles_are_held_to_the_records():
    recs = build_chain(300, SIGNER)
    rows = _stored_states(recs, {100, 256, 300})
    check = open_checkpoints(ORIGIN, notes_for(recs, {300}), CP_PUB)
    check.expect_states(rows)
    list(check.feed(recs))
    check.finish()
    assert not check.failures and check.states_checked == 3 and check.tiles == {(8, 0): {rows[1][5][0]}}


@pytest.mark.parametrize("edit, seq, what", [
    (lambda rows: rows[0].__setitem__(1, "00" * 32), 99, "at size 100: its root"),
    (lambda rows: rows[0][2].__setitem__(0, "11" * 32), 99, "at size 100: its compact range"),
    (lambda rows: rows[1][5].__setitem__(0, "22" * 32), 0, "level 8 index 0 (records 0..255)"),
])
def test_an_edited_tree_state_or_tile_is_located_by_chain_and_size(edit, seq, what):
    recs = build_chain(300, SIGNER)
    rows = _stored_states(recs, {100, 256, 300})
    edit(rows)
    check = open_checkpoints(ORIGIN, notes_for(recs, {300}), CP_PUB)
    check.expect_states(rows)
    list(check.feed(recs))
    check.finish()
    assert [(f.origin, f.seq, f.reason) for f in check.failures] == [(ORIGIN, seq, "tree_state_mismatch")]
    assert what in check.failures[0].detail


def test_a_malformed_tree_state_row_is_a_located_failure_not_a_crash():
    check = open_checkpoints(ORIGIN, [], CP_PUB)
    check.expect_states([[1, "ab"], ["x", "ab", [], [], [], []], [5, "ab", [], [8], [], []]])
    assert [f.reason for f in check.failures] == ["tree_state_mismatch"] * 3


def final_for(records, size, key=CP_KEY):
    """The signed final checkpoint that closes the chain at `size` (as the chain worker writes it
    when the next generation starts)."""
    from aiaudit.pipeline.chain.checkpoint import LocalNotary

    tree, _ = extend(CompactRange(), [r.leaf_hash for r in records[:size]])
    note, _ = LocalNotary(key).sign(records[0].origin, tree, b"", tree, CLOCK_NOW, final=True)
    return [(size, note)]


def test_a_chain_closed_by_a_final_checkpoint_is_not_stale_and_nothing_may_follow_it():
    recs = build_chain(10, SIGNER)
    old = open_checkpoints(ORIGIN, notes_for(recs, {10}), CP_PUB, cosigs=stamps_for(recs, {10}, [CLOCK_NOW - 86400]),
                           finals=final_for(recs, 10))
    assert not old.failures and old.final is not None and old.final[0] == 10
    report = verify_slices([(ORIGIN, 0, 9)], lambda o, a, b: stored(recs)[a:b + 1], RING, whole=True,
                           reconcile=False, checkpoints=lambda o: old, checkpointed=[ORIGIN])
    assert report.ok
    old.tail_rule(CLOCK_NOW, 900)  # a day old: a closed chain's end is signed, it is not stale
    assert old.failures == []
    # The same chain without its final checkpoint is stale; records past a final one are named.
    open_ = open_checkpoints(ORIGIN, notes_for(recs, {10}), CP_PUB, cosigs=stamps_for(recs, {10}, [CLOCK_NOW - 86400]))
    open_.tail_rule(CLOCK_NOW, 900)
    assert [f.reason for f in open_.failures] == ["stale"]
    closed_early = open_checkpoints(ORIGIN, notes_for(recs, {8, 10}), CP_PUB, finals=final_for(recs, 8))
    list(closed_early.feed(stored(recs)))
    closed_early.tail_rule(CLOCK_NOW, 900)
    assert [(f.seq, f.reason) for f in closed_early.failures] == [(8, "after_final")]


def test_a_final_checkpoint_must_be_one_and_be_signed_by_the_pinned_key():
    recs = build_chain(6, SIGNER)
    forged = final_for(recs, 6, key=Ed25519PrivateKey.generate())
    plain = notes_for(recs, {6})  # an ordinary checkpoint passed off as the final one
    other = final_for(build_chain(6, Ed25519Signer.generate()), 6)
    for finals in (forged, plain):
        check = open_checkpoints(ORIGIN, notes_for(recs, {6}), CP_PUB, finals=finals)
        assert check.final is None and [f.reason for f in check.failures] == ["bad_checkpoint"]
    check = open_checkpoints(ORIGIN, notes_for(recs, {6}), CP_PUB, finals=other)
    assert check.final is None and [f.reason for f in check.failures] == ["bad_checkpoint"]  # another root at 6
