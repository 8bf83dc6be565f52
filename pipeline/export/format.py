"""The `aiaudit export` file (pure): everything an auditor needs to check the records without the database.

JSON Lines, one object per line, written in this order (a reader accepts any order):

    header      {"aiaudit_export": 3, "selection": "whole" | "sample", "filters": {...}, "exported_at": RFC 3339,
                 "records": {origin: count, ...}, "records_sha256": hex, "seal": {"key": base64, "sig": base64}}
    record      {"origin", "seq", "payload", "sig", "leaf_hash"}          Record.to_wire: the exact signed
                                                                         bytes, payload and sig in base64
    checkpoint  {"kind": "checkpoint", "origin", "size", "note", "cosignatures": [line, ...]}
    inclusion   {"kind": "inclusion", "origin", "seq", "size", "proof": [base64 hash, ...]}
    range       {"kind": "range", "origin", "first", "last", "size", "proof": [base64 hash, ...]}

`note` is the chain's C2SP signed checkpoint at `size`; `cosignatures` are C2SP tlog-cosignature
lines ("— name base64\\n") over that note: the log's own signed time (name = the origin: the
checkpoint key as a type 0x04 cosigner) and witnesses' cosignatures, the newest of each signer
at that size. A "whole" export holds whole chains and
every signed checkpoint: the records must rebuild each checkpoint's root, and a checkpoint that
covers records the file lacks shows they were removed. A "sample" (a filtered export) holds the
selected records, each chain's newest signed checkpoint, and an RFC 9162 inclusion proof of
every selected record that checkpoint covers: the records the filter left out are not needed.
A sample that holds a whole stretch of a chain (an evidence report's export) proves it with one
range line instead: the records first..last (each seq once, all under the checkpoint at `size`)
and `proof`, the roots of the subtrees outside the stretch (merkle.range_proof), rebuild that
checkpoint's root; at most one range per chain, at most 2 log2(size) hashes.
Files written before version 2 hold record lines only and are read as a whole selection.

The version 3 header is sealed by the operator key: `sig` is Ed25519 over
`b"aiaudit/export-header/v1\n" + JCS(header without "seal")`, and `key` is the raw public key
(base64), which a verifier must have pinned. `records` counts the record lines per origin and
`records_sha256` is SHA-256 over the record lines' bytes in file order, each ended by one LF.
So nothing can be removed from (or added to) an export after it was written, proofs or not;
it does not show that the filter selected every matching record (that rests on the store).
Version 2 headers (unsealed) are still read.

Every line is bounded and strictly shaped; a bad line is a ValueError naming what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aiaudit.pipeline.chain.merkle import HASH_SIZE
from aiaudit.pipeline.chain.note import MAX_NOTE_BYTES, MAX_SIGNATURES
from aiaudit.pipeline.chain.record import Record
from aiaudit.pipeline.jcs import canonicalize

VERSION = 3
READABLE = (2, 3)
HEADER_DOMAIN = b"aiaudit/export-header/v1\n"
MAX_ORIGINS = 100_000
SELECTIONS = ("whole", "sample")
# A request record is at most ~70 KB base64 (the contract bounds events); a v2 record holds its message
# whole (a dead letter up to the requests topic's largest message, a policy bundle up to 4 MiB).
MAX_LINE_BYTES = 12 * 1_048_576
MAX_PROOF_HASHES = 64  # a tree of 2^64 leaves
MAX_COUNT = 2**63 - 1


@dataclass(frozen=True)
class Seal:
    key: bytes  # the operator's raw Ed25519 public key
    sig: bytes


@dataclass(frozen=True)
class Header:
    selection: str
    filters: dict[str, Any]
    exported_at: str
    version: int = 2
    records: dict[str, int] | None = None  # version 3: record lines per origin
    records_sha256: str | None = None
    seal: Seal | None = None

    def body(self) -> dict[str, Any]:
        """The sealed members (version 3), as signed."""
        return {"aiaudit_export": self.version, "selection": self.selection, "filters": self.filters,
                "exported_at": self.exported_at, "records": self.records, "records_sha256": self.records_sha256}


@dataclass(frozen=True)
class ExportedCheckpoint:
    origin: str
    size: int
    note: str
    cosignatures: tuple[str, ...] = ()
    final: str | None = None  # the chain's signed final checkpoint at this size (it is closed)


@dataclass(frozen=True)
class Inclusion:
    origin: str
    seq: int
    size: int
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class RangeProof:
    origin: str
    first: int
    last: int  # inclusive
    size: int
    proof: tuple[bytes, ...]


@dataclass
class ExportFile:
    """What a file holds. `proofs` is keyed by (origin, seq), `ranges` by origin."""

    header: Header | None = None
    records: list[Record] = field(default_factory=list)
    checkpoints: list[ExportedCheckpoint] = field(default_factory=list)
    proofs: dict[tuple[str, int], Inclusion] = field(default_factory=dict)
    ranges: dict[str, RangeProof] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong), read leniently
    record_lines: Any = field(default_factory=hashlib.sha256)  # SHA-256 of the record lines read, in file order

    @property
    def selection(self) -> str:
        return self.header.selection if self.header else "whole"


# --- writing ---------------------------------------------------------------------------------


def record_line_bytes(line: bytes) -> bytes:
    """A record line as `records_sha256` covers it: its bytes without line end, then one LF."""
    return line.rstrip(b"\r\n") + b"\n"


def header_line(selection: str, filters: dict[str, Any], exported_at: str, *, records: dict[str, int],
                records_sha256: str, operator: Ed25519PrivateKey) -> bytes:
    """The version 3 header, sealed by the operator key."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}")
    header = Header(selection, filters, exported_at, VERSION, dict(records), records_sha256)
    sig = operator.sign(HEADER_DOMAIN + canonicalize(header.body()))
    key = operator.public_key().public_bytes_raw()
    return orjson.dumps({**header.body(), "seal": {"key": base64.b64encode(key).decode("ascii"),
                                                   "sig": base64.b64encode(sig).decode("ascii")}})


def seal_problem(header: Header | None, operator_keys: list[bytes] | tuple[bytes, ...],
                 counts: dict[str, int], records_sha256: str) -> tuple[str, str] | None:
    """(reason, detail) when the header does not seal exactly these record lines under a pinned
    operator key; None when it does. Reasons: unsealed, bad_seal, export_altered."""
    if header is None or header.seal is None:
        return "unsealed", ("the header is not sealed by an operator key (an export written before version 3): "
                            "records removed together with their proofs could not be seen")
    if not operator_keys:
        return "unsealed", "no operator public key to check the seal: give --operator-key or --trust"
    if header.seal.key not in operator_keys:
        return "bad_seal", "sealed by an operator key that is not pinned (--operator-key, the trust file's operator_keys)"
    try:
        Ed25519PublicKey.from_public_bytes(header.seal.key).verify(
            header.seal.sig, HEADER_DOMAIN + canonicalize(header.body()))
    except (InvalidSignature, ValueError):
        return "bad_seal", "the header's seal does not verify: the header was changed after export"
    stated = header.records or {}
    diffs = [f"{o}: {stated.get(o, 0)} stated, {counts.get(o, 0)} in the file"
             for o in sorted(set(stated) | set(counts)) if stated.get(o, 0) != counts.get(o, 0)]
    if diffs:
        return "export_altered", "record lines removed or added after export: " + "; ".join(diffs[:10])
    if header.records_sha256 != records_sha256:
        return "export_altered", "the record lines are not the ones exported (their SHA-256 differs from the seal's)"
    return None


def checkpoint_line(cp: ExportedCheckpoint) -> bytes:
    return orjson.dumps({"kind": "checkpoint", "origin": cp.origin, "size": cp.size, "note": cp.note,
                         "cosignatures": list(cp.cosignatures), **({"final": cp.final} if cp.final else {})})


def inclusion_line(inc: Inclusion) -> bytes:
    return orjson.dumps({"kind": "inclusion", "origin": inc.origin, "seq": inc.seq, "size": inc.size,
                         "proof": [base64.b64encode(h).decode("ascii") for h in inc.proof]})


def range_line(rng: RangeProof) -> bytes:
    return orjson.dumps({"kind": "range", "origin": rng.origin, "first": rng.first, "last": rng.last,
                         "size": rng.size, "proof": [base64.b64encode(h).decode("ascii") for h in rng.proof]})


# --- reading ---------------------------------------------------------------------------------


def _count(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{name} is not an integer 0..2^63-1")
    return value


def _text(obj: dict[str, Any], name: str, limit: int) -> str:
    value = obj.get(name)
    if type(value) is not str or not value or len(value) > limit:
        raise ValueError(f"{name} is not a non-empty string of at most {limit} characters")
    return value


def _exact_keys(obj: dict[str, Any], keys: set[str]) -> None:
    if set(obj) != keys:
        raise ValueError(f"expected exactly the members {sorted(keys)}, got {sorted(obj)[:20]}")


def _checkpoint(obj: dict[str, Any]) -> ExportedCheckpoint:
    _exact_keys(obj, {"kind", "origin", "size", "note", "cosignatures"} | ({"final"} if "final" in obj else set()))
    lines = obj["cosignatures"]
    if type(lines) is not list or len(lines) > MAX_SIGNATURES or any(type(x) is not str or len(x) > 1000 for x in lines):
        raise ValueError(f"cosignatures is not a list of at most {MAX_SIGNATURES} signature lines")
    return ExportedCheckpoint(_text(obj, "origin", 1000), _count(obj, "size"), _text(obj, "note", MAX_NOTE_BYTES),
                              tuple(lines), _text(obj, "final", MAX_NOTE_BYTES) if "final" in obj else None)


def _hashes(proof: Any, limit: int) -> tuple[bytes, ...]:
    if type(proof) is not list or len(proof) > limit:
        raise ValueError(f"proof is not a list of at most {limit} hashes")
    hashes = []
    for h in proof:
        try:
            digest = base64.b64decode(h, validate=True) if type(h) is str else b""
        except (ValueError, binascii.Error):
            digest = b""
        if len(digest) != HASH_SIZE:
            raise ValueError("a proof hash is not base64 of 32 bytes")
        hashes.append(digest)
    return tuple(hashes)


def _inclusion(obj: dict[str, Any]) -> Inclusion:
    _exact_keys(obj, {"kind", "origin", "seq", "size", "proof"})
    return Inclusion(_text(obj, "origin", 1000), _count(obj, "seq"), _count(obj, "size"),
                     _hashes(obj["proof"], MAX_PROOF_HASHES))


def _range(obj: dict[str, Any]) -> RangeProof:
    _exact_keys(obj, {"kind", "origin", "first", "last", "size", "proof"})
    first, last, size = _count(obj, "first"), _count(obj, "last"), _count(obj, "size")
    if not first <= last < size:
        raise ValueError("a range is first <= last < size")
    return RangeProof(_text(obj, "origin", 1000), first, last, size, _hashes(obj["proof"], 2 * MAX_PROOF_HASHES))


def _b64(value: Any, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True) if type(value) is str and len(value) < 200 else b""
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != size:
        raise ValueError(f"{what} is not base64 of {size} bytes")
    return raw


def _header(obj: dict[str, Any]) -> Header:
    version = obj.get("aiaudit_export")
    if type(version) is not int or version not in READABLE:
        raise ValueError(f"export version {str(version)[:20]!r}; this aiaudit reads versions {READABLE}")
    base = {"aiaudit_export", "selection", "filters", "exported_at"}
    _exact_keys(obj, base if version == 2 else base | {"records", "records_sha256", "seal"})
    if obj["selection"] not in SELECTIONS:
        raise ValueError(f"selection is not one of {SELECTIONS}")
    if type(obj["filters"]) is not dict:
        raise ValueError("filters is not an object")
    if version == 2:
        return Header(obj["selection"], obj["filters"], _text(obj, "exported_at", 64))
    records, digest, seal = obj["records"], obj["records_sha256"], obj["seal"]
    if type(records) is not dict or len(records) > MAX_ORIGINS or not all(
            type(k) is str and 0 < len(k) <= 1000 and type(v) is int and 0 <= v <= MAX_COUNT for k, v in records.items()):
        raise ValueError("records is not an object of origin: count")
    if type(digest) is not str or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("records_sha256 is not 64 lowercase hex digits")
    if type(seal) is not dict or set(seal) != {"key", "sig"}:
        raise ValueError("seal is not an object of key and sig")
    return Header(obj["selection"], obj["filters"], _text(obj, "exported_at", 64), version, records, digest,
                  Seal(_b64(seal["key"], 32, "seal.key"), _b64(seal["sig"], 64, "seal.sig")))


def add_line(into: ExportFile, line: bytes) -> None:
    """Parse one line into `into`. Raises ValueError naming what is wrong."""
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
    obj = orjson.loads(line)
    if type(obj) is not dict:
        raise ValueError("not a JSON object")
    if "aiaudit_export" in obj:
        if into.header is not None or into.records or into.checkpoints or into.proofs or into.ranges:
            raise ValueError("the header must be the first line, and only once")
        into.header = _header(obj)
    elif "kind" in obj:
        if obj["kind"] == "checkpoint":
            into.checkpoints.append(_checkpoint(obj))
        elif obj["kind"] == "inclusion":
            inc = _inclusion(obj)
            if (inc.origin, inc.seq) in into.proofs:
                raise ValueError(f"a second inclusion proof for {inc.origin} seq {inc.seq}")
            into.proofs[(inc.origin, inc.seq)] = inc
        elif obj["kind"] == "range":
            rng = _range(obj)
            if rng.origin in into.ranges:
                raise ValueError(f"a second range proof for {rng.origin}")
            into.ranges[rng.origin] = rng
        else:
            raise ValueError(f"unknown kind {str(obj['kind'])[:40]!r}")
    else:
        into.records.append(Record.from_wire(line))
        into.record_lines.update(record_line_bytes(line))
