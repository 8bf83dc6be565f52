"""C2SP signed notes, checkpoints and cosignatures, held to the specs' and Go's published vectors."""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline.chain import merkle
from aiaudit.pipeline.chain.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Checkpoint,
    NoteError,
    NoteSigner,
    Verifier,
    add_signatures,
    cosign,
    cosignatures,
    key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
    split_note,
)

# golang.org/x/mod/sumdb/note's example (also the signed-note reference implementation's test).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6Ryy"
          "BwJnAM=\n")
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
ENOCH_SIG = ("\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvM"
             "c+QQ=\n")
# c2sp.org/signed-note's own example key and note.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7"
             "Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")
# A cosignature (0x04) verifier key of transparency-dev/formats' tests: its id is the cosignature formula's.
COSIG_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"


def go_signer() -> NoteSigner:
    _, _, name, _, b64 = GO_SKEY.split("+", 4)
    blob = base64.b64decode(b64)
    return NoteSigner.local(name, blob[0], Ed25519PrivateKey.from_private_bytes(blob[1:]))


def test_go_vector_signs_byte_for_byte_and_opens():
    signer = go_signer()
    assert signer.verifier.vkey() == GO_VKEY
    assert sign_note(GO_TEXT, signer) == GO_TEXT + "\n" + GO_SIG
    peter, enoch = Verifier.from_vkey(GO_VKEY), Verifier.from_vkey(ENOCH_VKEY)
    both = GO_TEXT + "\n" + GO_SIG + ENOCH_SIG
    assert open_note(both, [peter]) == (GO_TEXT, [peter])  # EnochRoot's line is unknown: ignored
    assert open_note(both, [peter, enoch])[1] == [peter, enoch]
    with pytest.raises(NoteError, match="no verifiable"):
        open_note(both, [])


def test_the_specs_example_note_verifies_with_its_key():
    assert open_note(SPEC_NOTE, [Verifier.from_vkey(SPEC_VKEY)])[0] == "This is an example message.\n"


def test_cosignature_key_ids_use_type_0x04():
    v = Verifier.from_vkey(COSIG_VKEY)
    assert v.sig_type == SIG_COSIGNATURE_V1 and v.key_id == 0xDA77ADE7
    assert key_id(v.name, SIG_ED25519, v.public_key) != v.key_id  # the type byte separates the two uses


def test_bad_verifier_keys_are_refused():
    for bad in (GO_VKEY.replace("c74f20a3", "c74f20a4"), GO_VKEY[:-2], "PeterNeumann+c74f20a3", "a b+00000000+AQ==",
                GO_VKEY.replace("+ARpc", "+Axpc")):
        with pytest.raises(NoteError):
            Verifier.from_vkey(bad)


def test_a_failing_signature_of_a_known_key_rejects_the_note():
    peter = Verifier.from_vkey(GO_VKEY)
    forged = GO_TEXT.replace("problem", "answer", 1) + "\n" + GO_SIG
    with pytest.raises(NoteError, match="does not verify"):
        open_note(forged, [peter])


@pytest.mark.parametrize("note", [
    GO_TEXT + GO_SIG,  # no blank line
    GO_TEXT + "\n" + GO_SIG.rstrip("\n"),  # no final newline
    "text\x01\n\n" + GO_SIG,  # a control character
    GO_TEXT + "\n" + GO_SIG.replace("\u2014", "-"),  # not an em dash
    GO_TEXT + "\n" + "\u2014 PeterNeumann !!!\n",  # not base64
    GO_TEXT + "\n" + "\u2014 Peter+Neumann x08go/ZJ\n",  # a '+' in the name
    GO_TEXT + "\n",  # no signature
    GO_TEXT + "\n" + GO_SIG * 101,  # too many signatures
    "x" * 70_000 + "\n\n" + GO_SIG,  # too large
])
def test_malformed_notes_are_refused(note):
    with pytest.raises(NoteError):
        split_note(note)


LOG_KEY = Ed25519PrivateKey.from_private_bytes(b"\x10" * 32)
LOG = NoteSigner.local("acme/dev/ai.requests/p0/g1", SIG_ED25519, LOG_KEY)
WITNESS = NoteSigner.local("witness.example/w1", SIG_COSIGNATURE_V1, Ed25519PrivateKey.from_private_bytes(b"\x20" * 32))


def test_checkpoint_text_signs_opens_and_carries_cosignatures():
    root = merkle.root_of([merkle.hash_leaf(b"a"), merkle.hash_leaf(b"b")])
    cp = Checkpoint(LOG.name, 2, root)
    assert cp.text() == f"{LOG.name}\n2\n{base64.b64encode(root).decode()}\n"
    note = sign_checkpoint(cp, LOG)
    assert open_checkpoint(note, LOG.verifier) == cp
    cosig = cosign(cp.text(), WITNESS, 1_800_000_000)
    assert struct.unpack(">Q", cosig.signature[:8])[0] == 1_800_000_000 and len(cosig.signature) == 72
    cosigned = add_signatures(note, [cosig.line()])
    assert open_checkpoint(cosigned, LOG.verifier) == cp
    assert cosignatures(cosigned, [WITNESS.verifier]) == {WITNESS.name: 1_800_000_000}
    assert cosignatures(note, [WITNESS.verifier]) == {}
    # The cosigned message is the spec's: header, time line, then the checkpoint text.
    assert WITNESS.verifier.verify(cosig.signature[8:], b"cosignature/v1\ntime 1800000000\n" + cp.text().encode())
    # A cosignature moved to another checkpoint, or with its time changed, does not verify.
    other = sign_checkpoint(Checkpoint(LOG.name, 3, root), LOG)
    with pytest.raises(NoteError, match="does not verify"):
        cosignatures(add_signatures(other, [cosig.line()]), [WITNESS.verifier])
    retimed = cosig.__class__(cosig.name, cosig.key_id, struct.pack(">Q", 1_900_000_000) + cosig.signature[8:])
    with pytest.raises(NoteError, match="does not verify"):
        cosignatures(add_signatures(note, [retimed.line()]), [WITNESS.verifier])


def test_a_log_key_vouches_only_for_its_own_origin():
    with pytest.raises(NoteError, match="origin"):
        sign_checkpoint(Checkpoint("other/origin", 1, bytes(32)), LOG)
    impostor = NoteSigner.local("other/origin", SIG_ED25519, LOG_KEY)
    note = sign_note(Checkpoint(LOG.name, 1, bytes(32)).text(), impostor)
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(note, impostor.verifier)


@pytest.mark.parametrize("text", [
    "o\n07\n" + base64.b64encode(bytes(32)).decode() + "\n",  # a leading zero
    "o\n7\n",  # no root
    "o\n7\nAAAA\n",  # a root that is not 32 bytes
    "o\n-7\n" + base64.b64encode(bytes(32)).decode() + "\n",  # negative
    "o\n7\n" + base64.b64encode(bytes(32)).decode(),  # no final newline
    "o\n" + "9" * 30 + "\n" + base64.b64encode(bytes(32)).decode() + "\n",  # absurd size
])
def test_malformed_checkpoints_are_refused(text):
    with pytest.raises(NoteError):
        Checkpoint.parse(text)
