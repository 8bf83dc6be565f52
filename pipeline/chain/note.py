"""C2SP signed notes, tlog checkpoints and tlog cosignatures (pure; Ed25519 only).

    note       = text ("\\n"-terminated) || "\\n" || signature lines        (c2sp.org/signed-note)
    sig line   = "— " key-name " " base64(key-id[4] || signature) "\\n"
    key id     = SHA-256(name || 0x0A || type || public key)[:4]           type 0x01 Ed25519, 0x04 cosignature/v1
    checkpoint = origin "\\n" size "\\n" base64(root) "\\n"                   (c2sp.org/tlog-checkpoint)
    cosig      = key-id || u64be(timestamp) || Ed25519("cosignature/v1\\ntime <t>\\n" || checkpoint text)
                                                                           (c2sp.org/tlog-cosignature)
    vkey       = name "+" hex(key id) "+" base64(type || public key)      (how a verifier key is pinned)

A log signs its checkpoints with an Ed25519 note key named by its origin; a witness returns
cosignatures under its own name. Verifiers ignore signatures from keys they were not given;
a signature from a given key that fails rejects the whole note (signed-note, "Signatures").
Every parse is strict and bounded: a note is at most MAX_NOTE_BYTES with at most
MAX_SIGNATURES lines, UTF-8 with no control character but newline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aiaudit.pipeline.chain.merkle import HASH_SIZE

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
DASH = "\u2014 "
MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURES = 100
COSIGNATURE_HEADER = b"cosignature/v1\n"


class NoteError(ValueError):
    """A note, checkpoint, cosignature or verifier key that is malformed or does not verify."""


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise NoteError(f"key name {name!r} must be non-empty, with no spaces and no '+'")


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    _check_name(name)
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4], "big")


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A pinned public key: name, signature type, 32-byte Ed25519 key."""

    name: str
    sig_type: int
    public_key: bytes

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.sig_type, self.public_key)

    def vkey(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(bytes([self.sig_type]) + self.public_key).decode()}"

    @classmethod
    def from_vkey(cls, text: str) -> "Verifier":
        """Parse `name+hexid+base64(type||key)`. Raises NoteError, also when the id does not match."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3 or len(parts[1]) != 8:
            raise NoteError(f"{text[:80]!r} is not a verifier key (name+keyid+base64)")
        name, hex_id, b64 = parts
        try:
            declared = int(hex_id, 16)
            blob = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise NoteError(f"verifier key {name!r}: {exc}") from exc
        if len(blob) != 33 or blob[0] not in (SIG_ED25519, SIG_COSIGNATURE_V1):
            raise NoteError(f"verifier key {name!r}: not an Ed25519 (0x01) or cosignature (0x04) key")
        v = cls(name, blob[0], blob[1:])
        if v.key_id != declared:
            raise NoteError(f"verifier key {name!r}: key id {hex_id} does not match its name and key")
        return v

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
            return True
        except (InvalidSignature, ValueError):
            return False


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 signing function under a name, for note signatures (0x01) or cosignatures (0x04).

    `sign` is all that is asked of the key: a local key's `sign`, or a call to a KMS or HSM that
    signs with an Ed25519 key it never releases (the public key is given alongside)."""

    name: str
    sig_type: int
    sign: Callable[[bytes], bytes]
    public_key: bytes

    @classmethod
    def local(cls, name: str, sig_type: int, key: Ed25519PrivateKey) -> "NoteSigner":
        return cls(name, sig_type, key.sign, _raw(key.public_key()))

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.sig_type, self.public_key)


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: int
    signature: bytes  # after the key id: Ed25519 (64) or timestamp || Ed25519 (72)

    def line(self) -> str:
        return f"{DASH}{self.name} {base64.b64encode(struct.pack('>I', self.key_id) + self.signature).decode()}\n"


def split_note(note: str) -> tuple[str, list[Signature]]:
    """(text, signatures) of a signed note, strictly parsed. Verifies nothing. Raises NoteError."""
    if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise NoteError(f"note larger than {MAX_NOTE_BYTES} bytes")
    if any(c < " " and c != "\n" for c in note):
        raise NoteError("note holds a control character")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("note has no blank line before its signatures, or no final newline")
    text, lines = note[:cut + 1], note[cut + 2:].split("\n")[:-1]
    if not lines:
        raise NoteError("note has no signature")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, at most {MAX_SIGNATURES}")
    sigs = []
    for line in lines:
        if not line.startswith(DASH):
            raise NoteError(f"signature line {line[:60]!r} does not start with an em dash")
        name, _, b64 = line[len(DASH):].partition(" ")
        _check_name(name)
        try:
            blob = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise NoteError(f"signature of {name}: not base64") from exc
        if len(blob) < 5:
            raise NoteError(f"signature of {name}: too short")
        sigs.append(Signature(name, struct.unpack(">I", blob[:4])[0], blob[4:]))
    return text, sigs


def sign_note(text: str, signer: NoteSigner) -> str:
    """text + blank line + this signer's Ed25519 note signature line."""
    if not text.endswith("\n") or "\n\n" in text or any(c < " " and c != "\n" for c in text):
        raise NoteError("note text must end in a newline and hold no blank line or control character")
    if signer.sig_type != SIG_ED25519:
        raise NoteError("note signatures take an Ed25519 (0x01) key")
    sig = Signature(signer.name, signer.verifier.key_id, signer.sign(text.encode()))
    return text + "\n" + sig.line()


def add_signatures(note: str, lines: Iterable[str]) -> str:
    """The note with more signature lines (e.g. a witness's cosignatures) after its own."""
    out = note + "".join(lines)
    split_note(out)  # still a well-formed note
    return out


def open_note(note: str, verifiers: Sequence[Verifier]) -> tuple[str, list[Verifier]]:
    """The note's text and which of `verifiers` signed it. Raises NoteError when a known key's
    signature fails, or when no known key signed (signatures of unknown keys are ignored)."""
    text, sigs = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    ok: list[Verifier] = []
    for sig in sigs:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue
        message = text.encode()
        body = sig.signature
        if v.sig_type == SIG_COSIGNATURE_V1:
            if len(body) != 72:
                raise NoteError(f"cosignature of {v.name} is {len(body)} bytes, not 8 + 64")
            message = cosigned_message(text, struct.unpack(">Q", body[:8])[0])
            body = body[8:]
        if not v.verify(body, message):
            raise NoteError(f"signature of {v.name} ({v.key_id:08x}) does not verify")
        if v not in ok:
            ok.append(v)
    if not ok:
        raise NoteError("note has no verifiable signature from a trusted key")
    return text, ok


# --- checkpoints (c2sp.org/tlog-checkpoint) -------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> "Checkpoint":
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("a checkpoint is origin, size and root lines (and non-empty extensions), each ending in a newline")
        origin, size, root = lines[0], lines[1], lines[2]
        if not size.isdigit() or (size != "0" and size.startswith("0")) or len(size) > 20:
            raise NoteError(f"checkpoint size {size[:30]!r} is not a decimal without leading zeros")
        try:
            digest = base64.b64decode(root, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise NoteError("checkpoint root is not base64") from exc
        if len(digest) != HASH_SIZE:
            raise NoteError(f"checkpoint root is {len(digest)} bytes, not {HASH_SIZE}")
        return cls(origin, int(size), digest)


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    if signer.name != checkpoint.origin:
        raise NoteError(f"the log key {signer.name!r} must be named by the checkpoint's origin {checkpoint.origin!r}")
    return sign_note(checkpoint.text(), signer)


def open_checkpoint(note: str, log_key: Verifier) -> Checkpoint:
    """The checkpoint of a note signed by `log_key`, whose origin must be the key's name."""
    text, _ = open_note(note, [log_key])
    cp = Checkpoint.parse(text)
    if cp.origin != log_key.name:
        raise NoteError(f"checkpoint origin {cp.origin!r} is not the log key's name {log_key.name!r}")
    return cp


# --- cosignatures (c2sp.org/tlog-cosignature, Ed25519 v1) ------------------------------------


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    return COSIGNATURE_HEADER + f"time {timestamp}\n".encode() + checkpoint_text.encode()


def cosign(checkpoint_text: str, witness: NoteSigner, timestamp: int) -> Signature:
    """A witness's timestamped cosignature over a checkpoint's text."""
    if witness.sig_type != SIG_COSIGNATURE_V1:
        raise NoteError("cosignatures take a cosignature (0x04) key")
    if not 0 <= timestamp < 2**63:
        raise NoteError("cosignature timestamp out of range")
    sig = witness.sign(cosigned_message(checkpoint_text, timestamp))
    return Signature(witness.name, witness.verifier.key_id, struct.pack(">Q", timestamp) + sig)


def signature_line(line: str) -> Signature:
    """One signature line ("— name base64", final newline optional), parsed, unverified. Raises NoteError."""
    _, sigs = split_note("x\n\n" + (line if line.endswith("\n") else line + "\n"))
    if len(sigs) != 1:
        raise NoteError("not one signature line")
    return sigs[0]


def cosignature_time(line: str) -> tuple[str, int]:
    """(signer name, claimed timestamp) of a cosignature line, unverified (for choosing which to keep).
    Raises NoteError when the line is not a cosignature line."""
    sig = signature_line(line)
    if len(sig.signature) != 72:
        raise NoteError("not a cosignature line")
    return sig.name, struct.unpack(">Q", sig.signature[:8])[0]


def cosignatures(note: str, witnesses: Sequence[Verifier]) -> dict[str, int]:
    """Witness name -> timestamp of each valid cosignature by a pinned witness key. A cosignature
    by a pinned key that does not verify raises NoteError; unknown keys are ignored."""
    text, sigs = split_note(note)
    known = {(w.name, w.key_id): w for w in witnesses if w.sig_type == SIG_COSIGNATURE_V1}
    out: dict[str, int] = {}
    for sig in sigs:
        w = known.get((sig.name, sig.key_id))
        if w is None:
            continue
        if len(sig.signature) != 72:
            raise NoteError(f"cosignature of {w.name} is {len(sig.signature)} bytes, not 8 + 64")
        ts = struct.unpack(">Q", sig.signature[:8])[0]
        if not w.verify(sig.signature[8:], cosigned_message(text, ts)):
            raise NoteError(f"cosignature of {w.name} does not verify")
        out[w.name] = max(ts, out.get(w.name, 0))
    return out
