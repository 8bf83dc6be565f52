"""The witness's add-checkpoint decision, one test per status code of c2sp.org/tlog-witness."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline.chain import merkle
from aiaudit.pipeline.chain.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Checkpoint,
    NoteSigner,
    add_signatures,
    cosignatures,
    sign_checkpoint,
)
from aiaudit.pipeline.witness.core import AddCheckpoint, BadRequest, Cosigned, decide, parse_request, request_body

ORIGIN = "acme/prod/ai.requests/p0/g1"
LOG_KEY = Ed25519PrivateKey.generate()
LOG = NoteSigner.local(ORIGIN, SIG_ED25519, LOG_KEY)
WITNESS = NoteSigner.local("witness.example/w1", SIG_COSIGNATURE_V1, Ed25519PrivateKey.generate())
LOGS = {ORIGIN: LOG.verifier}
LEAVES = [merkle.hash_leaf(bytes([i])) for i in range(40)]
NOW = 1_800_000_000


def note(size: int, leaves=LEAVES, signer=LOG) -> str:
    return sign_checkpoint(Checkpoint(signer.name, size, merkle.root_of(leaves[:size])), signer)


def proof(old: int, size: int, leaves=LEAVES) -> tuple[bytes, ...]:
    return tuple(merkle.consistency_proof(old, size, lambda a, b: merkle.root_of(leaves[a:b])))


def cosigned(size: int) -> Cosigned:
    return Cosigned(size, merkle.root_of(LEAVES[:size]))


def test_first_checkpoint_is_cosigned_and_the_cosignature_verifies():
    a = decide(AddCheckpoint(0, (), note(10)), LOGS, None, WITNESS, NOW)
    assert a.status == 200 and a.cosigned == Cosigned(10, merkle.root_of(LEAVES[:10]), a.body)
    assert cosignatures(add_signatures(note(10), [a.body]), [WITNESS.verifier]) == {WITNESS.name: NOW}


def test_a_consistent_newer_checkpoint_is_cosigned():
    a = decide(AddCheckpoint(10, proof(10, 25), note(25)), LOGS, cosigned(10), WITNESS, NOW)
    assert a.status == 200 and a.cosigned.size == 25


def test_unknown_log_is_404():
    stranger = NoteSigner.local("other/log", SIG_ED25519, Ed25519PrivateKey.generate())
    assert decide(AddCheckpoint(0, (), note(3, signer=stranger)), LOGS, None, WITNESS, NOW).status == 404


def test_a_checkpoint_not_signed_by_the_logs_key_is_403():
    forger = NoteSigner.local(ORIGIN, SIG_ED25519, Ed25519PrivateKey.generate())
    assert decide(AddCheckpoint(0, (), note(3, signer=forger)), LOGS, None, WITNESS, NOW).status == 403


def test_old_size_larger_than_the_checkpoint_is_400():
    assert decide(AddCheckpoint(30, (), note(20)), LOGS, cosigned(30), WITNESS, NOW).status == 400


def test_stale_or_replayed_old_size_is_409_with_the_known_size():
    a = decide(AddCheckpoint(10, proof(10, 25), note(25)), LOGS, cosigned(20), WITNESS, NOW)
    assert (a.status, a.body, a.content_type) == (409, "20\n", "text/x.tlog.size")
    replay = decide(AddCheckpoint(0, (), note(10)), LOGS, cosigned(25), WITNESS, NOW)
    assert replay.status == 409 and replay.cosigned is None


def test_same_size_other_root_is_409():
    forked = [*LEAVES[:19], merkle.hash_leaf(b"forged")]
    a = decide(AddCheckpoint(20, (), note(20, forked)), LOGS, cosigned(20), WITNESS, NOW)
    assert a.status == 409 and a.cosigned is None


def test_an_inconsistent_checkpoint_is_422():
    rewritten = [*LEAVES[:5], merkle.hash_leaf(b"rewritten"), *LEAVES[6:]]
    a = decide(AddCheckpoint(10, proof(10, 30, rewritten), note(30, rewritten)), LOGS, cosigned(10), WITNESS, NOW)
    assert a.status == 422 and a.cosigned is None
    bad = decide(AddCheckpoint(10, proof(10, 30)[:-1], note(30)), LOGS, cosigned(10), WITNESS, NOW)
    assert bad.status == 422


def test_request_format_round_trips_and_refuses_malformed_bodies():
    body = request_body(10, list(proof(10, 25)), note(25))
    assert parse_request(body) == AddCheckpoint(10, proof(10, 25), note(25))
    for bad in (b"old 01\n\n" + note(3).encode(), b"old x\n\n", b"new 3\n\n", b"old 3\n" + note(3).encode(),
                b"old 3\nnot-base64!\n\n" + note(3).encode(), b"old 3\nAAAA\n\n" + note(3).encode(),
                b"old 3\n" + b"A" * 44 + b"\n" + b"\n" * 0 + b"\xff\n\n", b"x" * 70_000,
                ("old 3\n" + "\n".join([merkle.EMPTY_ROOT.hex()] * 64) + "\n\n").encode()):
        with pytest.raises(BadRequest):
            parse_request(bad)
