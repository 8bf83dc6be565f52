"""What the checkpoint signer signs, pure: only a tree that extends the one it last signed.

The chain worker asks with its tree at some size it knows was signed (`old_size`, that tree's
compact range) and the leaf hashes it appended since. The signer rebuilds the new tree from them
itself, and when the rebuilt tree passes the size it signed last, its root there must be the root
it signed: so whoever holds only the chain worker's host (its record key, its Kafka credentials,
even the signer's token) can get new records signed, never a rewrite of signed history. The
signer also stamps each checkpoint with its own clock (a C2SP tlog-cosignature by the checkpoint
key, as the worker did when it held the key), so a worker cannot backdate one either.

Request (JSON, POST /sign):
    {"origin": str, "old_size": int, "old_range": [base64 32-byte hashes], "leaves": base64 of
     the concatenated 32-byte leaf hashes, "final": bool (optional)}
With "final": true the note is the chain's final checkpoint (pipeline/chain/checkpoint.py
final_text), and the signer signs nothing more for that origin (409 `closed`).
Answers:
    200 {"size": n, "note": signed checkpoint, "timestamp": cosignature line}
    409 {"signed_size": m, "reason": str}: not an extension of size m (`behind`: the request ends
        before m, ask again with more leaves; otherwise a refusal to take seriously)
    400 a malformed request; 401 no or a wrong token (server.py)
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from aiaudit.pipeline.chain.checkpoint import final_text
from aiaudit.pipeline.chain.merkle import HASH_SIZE, CompactRange
from aiaudit.pipeline.chain.note import Checkpoint, NoteSigner, cosign, sign_checkpoint, sign_note

MAX_LEAVES = 1 << 20
MAX_REQUEST_BYTES = 4 * ((MAX_LEAVES * HASH_SIZE + 2) // 3) + 64 * 1024
MAX_ORIGIN = 512


@dataclass(frozen=True)
class Signed:
    """What the signer last signed for one origin: the tree's size and compact range."""

    size: int
    hashes: tuple[bytes, ...]
    final: bool = False  # closed: nothing more is signed for the origin

    def tree(self) -> CompactRange:
        return CompactRange(self.size, list(self.hashes))


@dataclass(frozen=True)
class SignRequest:
    origin: str
    old_size: int
    old_range: tuple[bytes, ...]
    leaves: bytes  # concatenated 32-byte hashes
    final: bool = False


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    signed: Signed | None = None  # on 200: what to persist before answering


class BadRequest(ValueError):
    pass


def _hash(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 44:
        raise BadRequest("a hash is base64 of 32 bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise BadRequest("a hash is base64 of 32 bytes") from None
    if len(raw) != HASH_SIZE:
        raise BadRequest("a hash is base64 of 32 bytes")
    return raw


def parse_request(body: bytes) -> SignRequest:
    """Strict parse of a /sign body. Raises BadRequest naming what is wrong."""
    if len(body) > MAX_REQUEST_BYTES:
        raise BadRequest(f"larger than {MAX_REQUEST_BYTES} bytes")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("not JSON") from None
    if not isinstance(doc, dict) or not {"origin", "old_size", "old_range", "leaves"} <= set(doc) or \
            not set(doc) <= {"origin", "old_size", "old_range", "leaves", "final"} or \
            not isinstance(doc.get("final", False), bool):
        raise BadRequest("a JSON object with exactly origin, old_size, old_range and leaves (and final: a boolean)")
    origin, old_size, old_range, leaves = doc["origin"], doc["old_size"], doc["old_range"], doc["leaves"]
    if not isinstance(origin, str) or not 0 < len(origin) <= MAX_ORIGIN or any(c.isspace() or not c.isprintable()
                                                                                for c in origin):
        raise BadRequest(f"origin: 1-{MAX_ORIGIN} printable characters, no spaces")
    if type(old_size) is not int or not 0 <= old_size < 1 << 62:
        raise BadRequest("old_size: an integer from 0")
    if not isinstance(old_range, list) or len(old_range) != bin(old_size).count("1"):
        raise BadRequest("old_range: one hash per set bit of old_size")
    hashes = tuple(_hash(h) for h in old_range)
    if not isinstance(leaves, str):
        raise BadRequest("leaves: base64 of the concatenated 32-byte leaf hashes")
    try:
        raw = base64.b64decode(leaves, validate=True)
    except binascii.Error:
        raise BadRequest("leaves: base64 of the concatenated 32-byte leaf hashes") from None
    if len(raw) % HASH_SIZE or len(raw) // HASH_SIZE > MAX_LEAVES:
        raise BadRequest(f"leaves: a multiple of 32 bytes, at most {MAX_LEAVES} hashes")
    return SignRequest(origin, old_size, hashes, raw, bool(doc.get("final", False)))


def request_body(origin: str, base: CompactRange, leaves: bytes, *, final: bool = False) -> bytes:
    return orjson.dumps({"origin": origin, "old_size": base.size,
                         "old_range": [base64.b64encode(h).decode() for h in base.hashes],
                         "leaves": base64.b64encode(leaves).decode(), **({"final": True} if final else {})})


def decide(req: SignRequest, last: Signed | None, key: NoteSigner, clock: NoteSigner, now_s: int, *,
           adopt: bool = False) -> Answer:
    """Sign the tree of `req` if it extends `last` (what this signer signed for the origin), with
    `key` (the checkpoint key, named by the origin) and `clock` (the same key as a cosigner)."""
    m = last.size if last is not None else 0
    n = req.old_size + len(req.leaves) // HASH_SIZE
    if last is not None and last.final:
        return Answer(409, {"signed_size": m, "reason": f"closed: this signer signed {req.origin[:200]}'s final "
                            f"checkpoint at size {m}"})
    if last is None and req.old_size and not adopt:
        return Answer(409, {"signed_size": 0, "reason": f"this signer never signed {req.origin[:200]}; a chain starts "
                            "at size 0 (to take over an existing chain once, start the signer with --adopt)"})
    if req.old_size > m and last is not None:
        return Answer(409, {"signed_size": m, "reason": f"old_size {req.old_size} is past the size this signer signed "
                            f"last ({m}): it did not sign that tree (was its state restored from an older copy?)"})
    if n < m:
        return Answer(409, {"signed_size": m, "reason": f"behind: the tree ends at {n}, this signer signed {m}"})
    tree = CompactRange(req.old_size, list(req.old_range))
    if last is not None and tree.size == m and tree.hashes != list(last.hashes):
        return Answer(409, {"signed_size": m, "reason": f"not an extension: another tree at size {m}"})
    for i in range(0, len(req.leaves), HASH_SIZE):
        tree.append(req.leaves[i:i + HASH_SIZE])
        if last is not None and tree.size == m and tree.hashes != list(last.hashes):
            return Answer(409, {"signed_size": m, "reason": f"not an extension: another tree at size {m}"})
    cp = Checkpoint(req.origin, tree.size, tree.root())
    note = sign_note(final_text(cp), key) if req.final else sign_checkpoint(cp, key)
    stamp = cosign(cp.text(), clock, now_s).line()
    return Answer(200, {"size": tree.size, "note": note, "timestamp": stamp},
                  Signed(tree.size, tuple(tree.hashes), req.final))
