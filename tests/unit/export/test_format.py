"""The export file (pipeline/export/format.py) and its verification without the database
(verify_export): a whole export against its checkpoints, a sample by inclusion proofs, and
hostile lines refused with a reason."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline.chain import merkle
from aiaudit.pipeline.chain.note import SIG_COSIGNATURE_V1, SIG_ED25519, NoteSigner, add_signatures, cosign, split_note
from aiaudit.pipeline.chain.record import Source, build_record
from aiaudit.pipeline.export.format import (
    ExportedCheckpoint,
    ExportFile,
    Inclusion,
    RangeProof,
    add_line,
    checkpoint_line,
    header_line,
    inclusion_line,
    range_line,
)
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.verify.run import verify_export
from aiaudit.pipeline.verify.trust import Trust
from tests.unit.helpers import ORIGIN, build_chain, events, keyring_of
from tests.unit.verify.test_tree import CP_PUB, notes_for

OPERATOR = Ed25519PrivateKey.generate()
OP_PUB = OPERATOR.public_key().public_bytes_raw()


def verify(file, keyring, *, checkpoint_keys=(), witnesses=(), min_cosignatures=0, windows=None,
           operator_keys=(OP_PUB,), **rest):
    """verify_export with a Trust made of these parts (the operator key pinned unless said)."""
    trust = Trust(keyring, tuple(checkpoint_keys), tuple((w, None) for w in witnesses), min_cosignatures,
                  windows=windows or {}, operator_keys=tuple(operator_keys))
    return verify_export(file, trust, **rest)
SIGNER = Ed25519Signer.generate()
RING = keyring_of(SIGNER)
RECS = build_chain(20, SIGNER)
LEAVES = [bytes.fromhex(r.leaf_hash) for r in RECS]


def subtree(start: int, end: int) -> bytes:
    return merkle.root_of(LEAVES[start:end])


def sealed_header(selection, records, filters=None, operator=OPERATOR) -> bytes:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.origin] = counts.get(r.origin, 0) + 1
    digest = hashlib.sha256(b"".join(r.to_wire() + b"\n" for r in records)).hexdigest()
    return header_line(selection, filters or {}, "2026-11-29T00:00:00Z", records=counts, records_sha256=digest,
                       operator=operator)


def export(selection: str, records, sizes=(20,), proofs=True, cosigs=(), ranged=False) -> ExportFile:
    """An export file built line by line through the same writer and reader as `aiaudit export`."""
    lines = [sealed_header(selection, records, {"actor": "alice@acme.example"} if selection == "sample" else {})]
    lines += [r.to_wire() for r in records]
    notes = notes_for(RECS, set(sizes))
    for size, note in notes:
        lines.append(checkpoint_line(ExportedCheckpoint(ORIGIN, size, note, tuple(cosigs))))
    if selection == "sample" and ranged:  # one range proof for the stretch the checkpoint covers
        size, first = notes[-1][0], records[0].seq
        last = min(records[-1].seq, size - 1)
        lines.append(range_line(RangeProof(ORIGIN, first, last, size, tuple(merkle.range_proof(first, last + 1, size,
                                                                                               subtree)))))
    elif selection == "sample" and proofs:
        size = notes[-1][0]
        for r in records:
            if r.seq < size:
                lines.append(inclusion_line(Inclusion(ORIGIN, r.seq, size, tuple(merkle.inclusion_proof(r.seq, size, subtree)))))
    out = ExportFile()
    for line in lines:
        add_line(out, line)
    return out


def reasons(report):
    return [(f.seq, f.reason) for f in report.failures]


def test_whole_export_matches_its_checkpoints():
    report = verify(export("whole", RECS, sizes=(5, 12, 20)), RING, checkpoint_keys=[CP_PUB])
    assert report.ok and report.checkpoints == 3 and not report.sample and report.emitters == 1


def test_whole_export_without_its_newest_records_is_truncated():
    report = verify(export("whole", RECS[:15], sizes=(5, 20)), RING, checkpoint_keys=[CP_PUB])
    assert reasons(report) == [(15, "truncated")]


@pytest.mark.parametrize("selection", ["whole", "sample"])
def test_an_export_with_its_checkpoints_stripped_fails_unanchored(selection):
    f = export(selection, RECS[:15])
    f.checkpoints.clear()
    report = verify(f, RING, checkpoint_keys=[CP_PUB])
    assert not report.ok and ("unanchored" in [r for _, r in reasons(report)])


def test_an_unanchored_export_passes_only_when_allowed_and_says_so():
    f = export("whole", RECS)
    f.checkpoints.clear()
    report = verify(f, RING, checkpoint_keys=[CP_PUB], allow_unanchored=True)
    assert report.ok and any("unanchored (allowed by --allow-unanchored)" in w for w in report.warnings)


def test_checkpoints_without_the_key_to_check_them_are_unanchored():
    report = verify(export("whole", RECS), RING, checkpoint_keys=[])
    assert [r for _, r in reasons(report)] == ["unanchored"]


def test_a_dropped_middle_record_names_exactly_the_missing_seq():
    f = export("whole", RECS[:9] + RECS[10:], sizes=(20,))
    report = verify(f, RING, checkpoint_keys=[CP_PUB])
    by_reason = {r: f for f in report.failures for r in [f.reason]}
    assert by_reason["gap"].detail == "seq 9..9 missing"
    assert "seq 9 missing" in by_reason["truncated"].detail and "19" not in by_reason["truncated"].detail


def test_a_sampled_record_removed_while_its_proof_stays_is_an_orphan_proof():
    f = export("sample", RECS[:8])
    f.records = [r for r in f.records if r.seq != 3]
    report = verify(f, RING, checkpoint_keys=[CP_PUB])
    assert reasons(report) == [(None, "export_altered"), (3, "orphan_proof")]


def _file_of(lines, tmp_path):
    from aiaudit.pipeline.export.read import read_export_file

    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return read_export_file(path, lenient=True)


def _sample_lines():
    f = export("sample", RECS[:8])
    lines = [sealed_header("sample", RECS[:8], {"actor": "alice@acme.example"})] + [r.to_wire() for r in RECS[:8]]
    lines += [checkpoint_line(c) for c in f.checkpoints] + [inclusion_line(p) for p in f.proofs.values()]
    return lines


def test_a_sealed_sample_export_read_from_its_file_verifies(tmp_path):
    report = verify(_file_of(_sample_lines(), tmp_path), RING, checkpoint_keys=[CP_PUB])
    assert report.ok and report.proven == 8, report.text()


@pytest.mark.parametrize("cut", ["record", "record_and_proof"])
def test_records_removed_from_a_sealed_export_fail_with_or_without_their_proofs(cut, tmp_path):
    lines = _sample_lines()
    del lines[4]  # the record at seq 3
    if cut == "record_and_proof":
        lines = [x for x in lines if not (b'"inclusion"' in x and b'"seq":3,' in x)]
    report = verify(_file_of(lines, tmp_path), RING, checkpoint_keys=[CP_PUB])
    assert "export_altered" in [r for _, r in reasons(report)]
    altered = next(f for f in report.failures if f.reason == "export_altered")
    assert f"{ORIGIN}: 8 stated, 7 in the file" in altered.detail


def test_a_record_line_changed_or_reordered_in_a_sealed_export_fails(tmp_path):
    lines = _sample_lines()
    lines[2], lines[3] = lines[3], lines[2]  # same records, other order
    report = verify(_file_of(lines, tmp_path), RING, checkpoint_keys=[CP_PUB])
    assert any(f.reason == "export_altered" and "SHA-256" in f.detail for f in report.failures)


def test_a_header_edited_or_sealed_by_another_key_fails(tmp_path):
    lines = _sample_lines()
    edited = lines[:]
    edited[0] = lines[0].replace(b'"actor":"alice@acme.example"', b'"actor":"bob@acme.example"')
    assert edited[0] != lines[0]
    assert [r for _, r in reasons(verify(_file_of(edited, tmp_path), RING, checkpoint_keys=[CP_PUB]))] == ["bad_seal"]
    foreign = lines[:]
    foreign[0] = sealed_header("sample", RECS[:8], {"actor": "alice@acme.example"}, operator=Ed25519PrivateKey.generate())
    assert [r for _, r in reasons(verify(_file_of(foreign, tmp_path), RING, checkpoint_keys=[CP_PUB]))] == ["bad_seal"]


def test_an_unsealed_export_fails_unless_allowed_and_with_no_operator_key_it_cannot_pass(tmp_path):
    lines = _sample_lines()
    old = orjson.loads(lines[0])
    lines[0] = orjson.dumps({k: old[k] for k in ("selection", "filters", "exported_at")} | {"aiaudit_export": 2})
    f = _file_of(lines, tmp_path)
    assert [r for _, r in reasons(verify(f, RING, checkpoint_keys=[CP_PUB]))] == ["unsealed"]
    allowed = verify(f, RING, checkpoint_keys=[CP_PUB], allow_unanchored=True)
    assert allowed.ok and any("unsealed (allowed" in w for w in allowed.warnings)
    unpinned = verify_export(_file_of(_sample_lines(), tmp_path), Trust(RING, (CP_PUB,)))
    assert [r for _, r in reasons(unpinned)] == ["unsealed"]


def test_every_malformed_line_is_reported_with_its_number_and_checking_goes_on(tmp_path):
    from aiaudit.pipeline.export.read import read_export_file

    f = export("whole", RECS)
    lines = [sealed_header("whole", RECS)] + [r.to_wire() for r in RECS]
    lines += [checkpoint_line(c) for c in f.checkpoints]
    lines[3] = b'{"origin": "x", "seq": "three"}'
    lines.insert(8, b"\xff\xfe not json")
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = verify(read_export_file(path, lenient=True), RING, checkpoint_keys=[CP_PUB])
    bad = [f for f in report.failures if f.reason == "malformed_line"]
    assert [f.where for f in bad] == ["line 4", "line 9"]
    assert report.chains and report.chains[0].records == 19  # the other lines were still checked
    assert any(f.reason == "gap" and f.seq == 2 for f in report.failures)


def test_a_sample_verifies_by_inclusion_and_reports_no_gaps():
    picked = [RECS[i] for i in (0, 3, 4, 9, 17)]
    report = verify(export("sample", picked), RING, checkpoint_keys=[CP_PUB])
    assert report.ok, report.failures
    assert report.sample and report.proven == 5 and report.records == 5 and report.emitters == 0
    assert "a sample: 5 record(s) proven included" in report.text()


def test_a_sampled_record_after_the_newest_checkpoint_is_a_warning():
    picked = [RECS[i] for i in (2, 15, 18)]
    report = verify(export("sample", picked, sizes=(16,)), RING, checkpoint_keys=[CP_PUB])
    assert report.ok and report.proven == 2
    assert any("1 sampled record(s) after the newest checkpoint" in w for w in report.warnings)


def test_a_sample_with_a_missing_or_wrong_proof_is_not_included():
    picked = [RECS[i] for i in (1, 6, 7)]
    f = export("sample", picked)
    del f.proofs[(ORIGIN, 6)]
    inc = f.proofs[(ORIGIN, 7)]
    f.proofs[(ORIGIN, 7)] = dataclasses.replace(inc, proof=(bytes(32),) + inc.proof[1:])
    report = verify(f, RING, checkpoint_keys=[CP_PUB])
    assert reasons(report) == [(6, "not_included"), (7, "not_included")]


def test_a_record_forged_into_a_sample_is_caught_even_with_a_valid_signature():
    """Someone with the record key signs another record at seq 4 (right prev, right origin) and
    puts it in the sample with the real record's proof: every record check passes, the proof fails."""
    ev = dict(events(5)[4], route="exfiltration-approved")
    forged = build_record(RECS[3].next_head(103), SIGNER, ev["occurred_at"], Source("ai.requests", 0, 104), ev)
    f = export("sample", [RECS[2], RECS[4]])
    f.records[1] = forged
    report = verify(f, RING, checkpoint_keys=[CP_PUB])
    assert reasons(report) == [(4, "not_included")]


def test_a_proof_against_a_size_no_checkpoint_signs_is_not_included():
    f = export("sample", [RECS[3]])
    f.proofs[(ORIGIN, 3)] = Inclusion(ORIGIN, 3, 8, tuple(merkle.inclusion_proof(3, 8, subtree)))
    report = verify(f, RING, checkpoint_keys=[CP_PUB])
    assert reasons(report) == [(3, "not_included")] and "size 8" in report.failures[0].detail


def test_a_checkpoint_under_a_foreign_key_proves_nothing():
    foreign = NoteSigner.local("x", SIG_ED25519, Ed25519PrivateKey.generate()).public_key
    report = verify(export("sample", [RECS[3]]), RING, checkpoint_keys=[foreign])
    got = [f.reason for f in report.failures]
    assert "bad_checkpoint" in got and report.proven == 0


def test_cosignatures_in_the_export_count_towards_the_trust_rule():
    witness = NoteSigner.local("witness.example", SIG_COSIGNATURE_V1, Ed25519PrivateKey.generate())
    note = notes_for(RECS, {20})[0][1]
    line = cosign(split_note(note)[0], witness, 1_800_000_000).line()
    assert add_signatures(note, [line])  # a well-formed cosignature line
    ok = verify(export("whole", RECS, cosigs=[line]), RING, checkpoint_keys=[CP_PUB],
                       witnesses=[witness.verifier], min_cosignatures=1)
    assert ok.ok
    missing = verify(export("whole", RECS), RING, checkpoint_keys=[CP_PUB], witnesses=[witness.verifier],
                            min_cosignatures=1)
    assert [f.reason for f in missing.failures] == ["unwitnessed"]


def test_an_old_export_without_a_header_is_a_whole_selection():
    f = ExportFile()
    for r in RECS:
        add_line(f, r.to_wire())
    assert f.selection == "whole" and not verify(f, RING).ok  # no checkpoint: unanchored
    assert verify(f, RING, allow_unanchored=True).ok  # the migration path, named


HOSTILE = [
    (b'[1, 2]', "not a JSON object"),
    (b'{"kind": "checkpoint", "origin": "o", "size": -1, "note": "n", "cosignatures": []}', "size"),
    (b'{"kind": "checkpoint", "origin": "o", "size": 1, "note": "n", "cosignatures": "x"}', "cosignatures"),
    (b'{"kind": "checkpoint", "origin": "o", "size": 1, "note": "n", "cosignatures": [], "x": 1}', "members"),
    (b'{"kind": "inclusion", "origin": "o", "seq": 1, "size": 2, "proof": ["AAAA"]}', "32 bytes"),
    (b'{"kind": "inclusion", "origin": "o", "seq": 1, "size": 2, "proof": [1]}', "32 bytes"),
    (b'{"kind": "inclusion", "origin": "o", "seq": 1.5, "size": 2, "proof": []}', "seq"),
    (b'{"kind": "inclusion", "origin": "o", "seq": 1, "size": 2, "proof": ' + orjson.dumps(["A" * 44] * 65) + b'}', "at most 64"),
    (b'{"kind": "nope"}', "unknown kind"),
    (b'{"aiaudit_export": 4, "selection": "whole", "filters": {}, "exported_at": "t"}', "version"),
    (b'{"aiaudit_export": 3, "selection": "whole", "filters": {}, "exported_at": "t"}', "members"),
    (b'{"aiaudit_export": 3, "selection": "whole", "filters": {}, "exported_at": "t", "records": {"o": -1}, '
     b'"records_sha256": "' + b"0" * 64 + b'", "seal": {"key": "", "sig": ""}}', "records"),
    (b'{"aiaudit_export": 3, "selection": "whole", "filters": {}, "exported_at": "t", "records": {}, '
     b'"records_sha256": "' + b"0" * 64 + b'", "seal": {"key": "AAAA", "sig": ""}}', "seal.key"),
    (b'{"aiaudit_export": 2, "selection": "all", "filters": {}, "exported_at": "t"}', "selection"),
    (b'{"origin": "o", "seq": "1", "payload": "", "sig": "", "leaf_hash": ""}', "wrong type"),
    (b'{"kind": "checkpoint", "origin": "o", "size": 1, "note": "' + b"a" * 70_000 + b'", "cosignatures": []}', "characters"),
    (b'{"a": "' + b"a" * (13 * 1_048_576) + b'"}', "longer than"),
]


@pytest.mark.parametrize(("line", "why"), HOSTILE)
def test_hostile_lines_are_refused_with_a_reason(line, why):
    with pytest.raises(ValueError, match=why):
        add_line(ExportFile(), line)


def test_a_header_after_records_is_refused():
    f = ExportFile()
    add_line(f, RECS[0].to_wire())
    with pytest.raises(ValueError, match="first line"):
        add_line(f, sealed_header("whole", RECS[:1]))


def test_a_second_proof_for_one_record_is_refused():
    f = ExportFile()
    line = inclusion_line(Inclusion(ORIGIN, 1, 2, (base64.b64decode("A" * 43 + "="),)))
    add_line(f, line)
    with pytest.raises(ValueError, match="second inclusion proof"):
        add_line(f, line)


def test_a_closed_chain_in_an_export_is_judged_by_its_final_checkpoint():
    """An earlier generation's chain, exported long after it closed: with its final checkpoint on
    the checkpoint line it is complete and not stale; the line survives the writer and the reader,
    and a reader of the older format's strict shape still refuses unknown members."""
    from tests.unit.verify.test_tree import CLOCK_NOW, final_for

    stale = verify(export("whole", RECS), RING, checkpoint_keys=[CP_PUB], tail=(CLOCK_NOW, 900))
    assert [r for _, r in reasons(stale)] == ["stale"]
    closed = export("whole", RECS)
    [(size, final)] = final_for(RECS, 20)
    cp = closed.checkpoints[0]
    again = ExportFile()
    for line in [sealed_header("whole", RECS), *(r.to_wire() for r in RECS),
                 checkpoint_line(dataclasses.replace(cp, final=final))]:
        add_line(again, line)
    assert again.checkpoints[0].final == final and not again.problems
    report = verify(again, RING, checkpoint_keys=[CP_PUB], tail=(CLOCK_NOW, 900))
    assert report.ok, report.text()
    with pytest.raises(ValueError, match="expected exactly the members"):
        add_line(ExportFile(), orjson.dumps({**orjson.loads(checkpoint_line(cp)), "closing": final}))


def test_a_stretch_proven_by_one_range_proof_verifies_and_counts_every_record():
    report = verify(export("sample", RECS[5:19], sizes=(16,), ranged=True), RING, checkpoint_keys=[CP_PUB])
    assert report.ok, report.failures
    assert report.proven == 11  # 5..15 under the checkpoint at 16; 16..18 after it
    assert any("3 sampled record(s) after the newest checkpoint" in w for w in report.warnings)


def test_a_range_proof_catches_a_forged_record_a_changed_hash_and_records_taken_out():
    ev = dict(events(8)[7], route="exfiltration-approved")
    forged = build_record(RECS[6].next_head(106), SIGNER, ev["occurred_at"], Source("ai.requests", 0, 107), ev)
    f = export("sample", RECS[2:18], ranged=True)
    f.records[5] = forged  # seq 7, validly signed by the record key, linked to 6: only the proof can tell
    report = verify(f, RING, checkpoint_keys=[CP_PUB])
    assert (2, "not_included") in reasons(report) and report.proven == 0  # the stretch as one, from its first
    assert "records 2..17 with their range proof lead to root" in report.text()
    f = export("sample", RECS[2:18], ranged=True)
    rng = f.ranges[ORIGIN]
    f.ranges[ORIGIN] = dataclasses.replace(rng, proof=(bytes(32),) + rng.proof[1:])
    assert reasons(verify(f, RING, checkpoint_keys=[CP_PUB])) == [(2, "not_included")]
    f.ranges[ORIGIN] = dataclasses.replace(rng, size=19)  # a size no checkpoint in the export signs
    assert "against size 19, which no verified checkpoint signs" in verify(f, RING, checkpoint_keys=[CP_PUB]).text()
    f.ranges[ORIGIN] = dataclasses.replace(rng, last=2**62, size=2**62 + 1)  # hostile: a stretch of 2^62 claimed
    assert "which no verified checkpoint signs" in verify(f, RING, checkpoint_keys=[CP_PUB]).text()  # and promptly
    f = export("sample", RECS[2:18], ranged=True)
    f.records = f.records[:4] + f.records[6:]  # seqs 6 and 7 gone (the seal would also say so)
    assert (6, "not_included") in reasons(verify(f, RING, checkpoint_keys=[CP_PUB], allow_unanchored=True))


@pytest.mark.parametrize("line, problem", [
    ({"first": 5, "last": 4}, "first <= last < size"),
    ({"last": 20}, "first <= last < size"),
    ({"proof": ["AAAA"]}, "not base64 of 32 bytes"),
    ({"proof": [base64.b64encode(bytes(32)).decode()] * 129}, "at most 128 hashes"),
    ({"extra": 1}, "expected exactly the members"),
])
def test_a_malformed_range_line_is_refused_naming_what_is_wrong(line, problem):
    base = {"kind": "range", "origin": ORIGIN, "first": 2, "last": 9, "size": 20, "proof": []}
    with pytest.raises(ValueError, match=problem):
        add_line(ExportFile(), orjson.dumps({**base, **line}))
    twice = ExportFile()
    add_line(twice, orjson.dumps(base))
    with pytest.raises(ValueError, match="a second range proof"):
        add_line(twice, orjson.dumps(base))
