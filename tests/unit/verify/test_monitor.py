"""The auditor's monitor state (verify --state): an insider holding every key rewrites history and
a witness restored from an old copy of its state cosigns the rewrite; only the auditor's own
memory of the root it verified catches it, located."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline.chain.checkpoint import extend
from aiaudit.pipeline.chain.merkle import CompactRange
from aiaudit.pipeline.chain.note import SIG_COSIGNATURE_V1, SIG_ED25519, NoteSigner
from aiaudit.pipeline.chain.record import Source, build_record
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.export.format import ExportedCheckpoint, ExportFile, add_line, checkpoint_line
from aiaudit.pipeline.verify import monitor
from aiaudit.pipeline.witness.core import AddCheckpoint, decide
from tests.unit.export.test_format import RING, SIGNER, sealed_header, verify
from tests.unit.helpers import ORIGIN, build_chain, events
from tests.unit.verify.test_tree import CP_KEY, CP_PUB, notes_for

WITNESS = NoteSigner.local("witness.example", SIG_COSIGNATURE_V1, Ed25519PrivateKey.generate())
LOGS = {ORIGIN: NoteSigner.local(ORIGIN, SIG_ED25519, CP_KEY).verifier}


def export(selection, records, sizes, cosigs=()):
    """A sealed whole export of `records` with their own signed checkpoints at `sizes`."""
    out = ExportFile()
    for line in [sealed_header(selection, records), *(r.to_wire() for r in records),
                 *(checkpoint_line(ExportedCheckpoint(ORIGIN, size, note, tuple(cosigs)))
                   for size, note in notes_for(records, set(sizes)))]:
        add_line(out, line)
    return out


def cosigned(records, size, last):
    """What the real witness logic answers for the chain's checkpoint at `size`, given its state."""
    note = notes_for(records, {size})[0][1]
    answer = decide(AddCheckpoint(last.size if last else 0, (), note), LOGS, last, WITNESS, 1_800_000_000)
    assert answer.status == 200, answer.body
    return answer.body.strip(), answer.cosigned


def rewritten(n: int, from_seq: int):
    """The insider's history: the same first records, then others, re-signed with the record key."""
    recs = build_chain(from_seq, SIGNER)
    head = recs[-1].next_head(100 + from_seq - 1)
    for i, ev in enumerate(events(n)[from_seq:], start=from_seq):
        rec = build_record(head, SIGNER, ev["occurred_at"], Source("ai.requests", 0, 100 + i), dict(ev, route="other"))
        recs.append(rec)
        head = rec.next_head(100 + i)
    return recs


def test_a_restored_witness_cosigns_a_rewrite_and_the_auditors_state_catches_it(tmp_path):
    genuine = build_chain(20, SIGNER)
    line, _ = cosigned(genuine, 20, None)
    first = verify(export("whole", genuine, sizes=(20,), cosigs=[line]), RING, checkpoint_keys=[CP_PUB],
                   witnesses=[WITNESS.verifier], min_cosignatures=1)
    assert first.ok and first.anchors[ORIGIN][0] == 20
    state = tmp_path / "monitor.json"
    assert monitor.write_state(state, {}, first.anchors, "2026-12-03T00:00:00Z") == 1

    forged = rewritten(20, 12)
    assert forged[11].leaf_hash == genuine[11].leaf_hash and forged[12].leaf_hash != genuine[12].leaf_hash
    line, _ = cosigned(forged, 20, None)  # the witness, restored from before it saw the genuine chain
    fooled = verify(export("whole", forged, sizes=(20,), cosigs=[line]), RING, checkpoint_keys=[CP_PUB],
                    witnesses=[WITNESS.verifier], min_cosignatures=1)
    assert fooled.ok  # every store-only check passes: the insider holds every key
    caught = verify(export("whole", forged, sizes=(20,), cosigs=[line]), RING, checkpoint_keys=[CP_PUB],
                    witnesses=[WITNESS.verifier], min_cosignatures=1, pins=monitor.read_state(state))
    assert [(f.origin, f.seq, f.reason) for f in caught.failures] == [(ORIGIN, 19, "inconsistent_with_state")]


def test_a_chain_that_grew_honestly_stays_consistent_and_the_state_advances(tmp_path):
    chain = build_chain(30, SIGNER)
    state = tmp_path / "monitor.json"
    first = verify(export("whole", chain[:20], sizes=(20,)), RING, checkpoint_keys=[CP_PUB])
    monitor.write_state(state, {}, first.anchors, "t1")
    pins = monitor.read_state(state)
    later = verify(export("whole", chain, sizes=(20, 30)), RING, checkpoint_keys=[CP_PUB], pins=pins)
    assert later.ok and later.anchors[ORIGIN][0] == 30
    assert monitor.write_state(state, pins, later.anchors, "t2") == 1
    assert monitor.read_state(state)[ORIGIN][0] == 30


def test_a_chain_shorter_than_the_state_or_gone_fails(tmp_path):
    chain = build_chain(20, SIGNER)
    tree, _ = extend(CompactRange(), [r.leaf_hash for r in chain])
    pins = {ORIGIN: (25, tree.root()), "acme/x/gone/p0/g1": (5, tree.root())}
    short = verify(export("whole", chain, sizes=(20,)), RING, checkpoint_keys=[CP_PUB], pins=pins)
    assert [(f.seq, f.reason) for f in short.failures] == [(None, "inconsistent_with_state")]
    assert [f.origin for f in monitor.gone(pins, [ORIGIN])] == ["acme/x/gone/p0/g1"]


@pytest.mark.parametrize("content", [b"[]", b"{}", b'{"aiaudit_monitor": 1, "chains": {"o": {"size": 0, "root": "00"}}}',
                                     b"\xff", b'{"aiaudit_monitor": 1, "chains": {"o": {"size": 3, "root": "zz"}}}'])
def test_a_damaged_state_file_is_refused_never_ignored(tmp_path, content):
    path = tmp_path / "monitor.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="monitor state"):
        monitor.read_state(path)
    assert monitor.read_state(tmp_path / "absent.json") == {}
