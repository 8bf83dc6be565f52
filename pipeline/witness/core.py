"""The witness's add-checkpoint decision (c2sp.org/tlog-witness), pure.

Request body: "old <size>\\n", up to 63 base64 consistency-proof lines, an empty line, then a
signed checkpoint note. The decision, in the spec's order and with its status codes:

    404  the checkpoint's origin is not a log this witness follows
    403  no signature on it verifies under that log's key
    400  old size > checkpoint size (or a malformed request)
    409  old size is not the size this witness last cosigned (body: that size, text/x.tlog.size),
         or the sizes are equal and the roots differ
    422  the consistency proof from the cosigned tree to this one does not verify
    200  cosignature line(s); the caller persists the new (size, root) before answering
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Protocol

from aiaudit.pipeline.chain import merkle
from aiaudit.pipeline.chain.merkle import ProofError
from aiaudit.pipeline.chain.note import Checkpoint, NoteError, NoteSigner, Verifier, cosign, open_checkpoint, split_note

MAX_REQUEST_BYTES = 64 * 1024
MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"


@dataclass(frozen=True)
class Cosigned:
    """What the witness last cosigned for one origin."""

    size: int
    root: bytes
    cosignature: str = ""  # the cosignature line handed out for it (served to monitors)


@dataclass(frozen=True)
class AddCheckpoint:
    old_size: int
    proof: tuple[bytes, ...]
    note: str


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"
    cosigned: Cosigned | None = None  # set on 200: what to persist before answering


class BadRequest(ValueError):
    pass


def parse_request(body: bytes) -> AddCheckpoint:
    """Strict parse of an add-checkpoint body. Raises BadRequest naming what is wrong."""
    if len(body) > MAX_REQUEST_BYTES:
        raise BadRequest(f"request larger than {MAX_REQUEST_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("request is not UTF-8") from exc
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise BadRequest("no empty line between the old size and proof lines and the checkpoint")
    lines = head.split("\n")
    old = lines[0]
    if not old.startswith("old ") or not old[4:].isdigit() or (old[4:] != "0" and old[4:].startswith("0")) \
            or len(old) > 24:
        raise BadRequest("the first line must be `old <size>` in decimal without leading zeros")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise BadRequest(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise BadRequest("a proof line is not base64") from exc
        if len(h) != merkle.HASH_SIZE:
            raise BadRequest("a proof line is not a 32-byte hash")
        proof.append(h)
    return AddCheckpoint(int(old[4:]), tuple(proof), note)


class LogKeyLookup(Protocol):
    """Which log key verifies an origin (a dict of origin -> Verifier is one)."""

    def get(self, origin: str, /) -> Verifier | None: ...


def decide(req: AddCheckpoint, logs: LogKeyLookup, last: Cosigned | None, witness: NoteSigner,
           now_s: int) -> Answer:
    """The answer to one add-checkpoint request, given what was last cosigned for its origin."""
    try:
        text, _ = split_note(req.note)
        cp = Checkpoint.parse(text)
    except NoteError as exc:
        return Answer(400, f"not a signed checkpoint: {exc}\n")
    key = logs.get(cp.origin)
    if key is None:
        return Answer(404, f"unknown log {cp.origin[:200]}\n")
    try:
        open_checkpoint(req.note, key)
    except NoteError:
        return Answer(403, "no signature verifies under the log's key\n")
    if req.old_size > cp.size:
        return Answer(400, f"old size {req.old_size} is larger than the checkpoint size {cp.size}\n")
    known = last.size if last is not None else 0
    if req.old_size != known:
        return Answer(409, f"{known}\n", SIZE_CONTENT_TYPE)
    if last is not None and req.old_size == cp.size:
        if last.root != cp.root:
            return Answer(409, f"{known}\n", SIZE_CONTENT_TYPE)
    elif last is not None:
        try:
            merkle.verify_consistency(last.size, cp.size, last.root, cp.root, req.proof)
        except ProofError as exc:
            return Answer(422, f"consistency proof from {last.size} to {cp.size} does not verify: {exc}\n")
    elif req.proof:
        return Answer(422, "the proof must be empty when the old size is 0\n")
    sig = cosign(text, witness, now_s)  # the whole note text, extension lines included (tlog-cosignature)
    return Answer(200, sig.line(), cosigned=Cosigned(cp.size, cp.root, sig.line()))


def request_body(old_size: int, proof: list[bytes], note: str) -> bytes:
    """The add-checkpoint body a log sends (the inverse of parse_request)."""
    lines = [f"old {old_size}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n" + note).encode()
