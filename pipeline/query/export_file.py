"""The `aiaudit export` file (pure): everything an auditor needs to check the records without the database.

JSON Lines, one object per line, written in this order (a reader accepts any order):

    header      {"aiaudit_export": 2, "selection": "whole" | "sample", "filters": {...}, "exported_at": RFC 3339}
    record      {"origin", "seq", "payload", "sig", "leaf_hash"}          Record.to_wire: the exact signed
                                                                         bytes, payload and sig in base64
    checkpoint  {"kind": "checkpoint", "origin", "size", "note", "cosignatures": [line, ...]}
    inclusion   {"kind": "inclusion", "origin", "seq", "size", "proof": [base64 hash, ...]}

`note` is the chain's C2SP signed checkpoint at `size`; `cosignatures` are C2SP tlog-cosignature
lines ("— name base64\\n") over that note: the log's own signed time (name = the origin: the
checkpoint key as a type 0x04 cosigner) and witnesses' cosignatures, the newest of each signer
at that size. A "whole" export holds whole chains and
every signed checkpoint: the records must rebuild each checkpoint's root, and a checkpoint that
covers records the file lacks shows they were removed. A "sample" (a filtered export) holds the
selected records, each chain's newest signed checkpoint, and an RFC 9162 inclusion proof of
every selected record that checkpoint covers: the records the filter left out are not needed.
Files written before version 2 hold record lines only and are read as a whole selection.

Every line is bounded and strictly shaped; a bad line is a ValueError naming what is wrong.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.chain.merkle import HASH_SIZE
from pipeline.chain.note import MAX_NOTE_BYTES, MAX_SIGNATURES
from pipeline.chain.record import Record

VERSION = 2
SELECTIONS = ("whole", "sample")
MAX_LINE_BYTES = 4 * MAX_NOTE_BYTES  # a record is at most ~70 KB base64 (the contract bounds events)
MAX_PROOF_HASHES = 64  # a tree of 2^64 leaves
MAX_COUNT = 2**63 - 1


@dataclass(frozen=True)
class Header:
    selection: str
    filters: dict[str, Any]
    exported_at: str


@dataclass(frozen=True)
class ExportedCheckpoint:
    origin: str
    size: int
    note: str
    cosignatures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inclusion:
    origin: str
    seq: int
    size: int
    proof: tuple[bytes, ...]


@dataclass
class ExportFile:
    """What a file holds. `proofs` is keyed by (origin, seq)."""

    header: Header | None = None
    records: list[Record] = field(default_factory=list)
    checkpoints: list[ExportedCheckpoint] = field(default_factory=list)
    proofs: dict[tuple[str, int], Inclusion] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong), read leniently

    @property
    def selection(self) -> str:
        return self.header.selection if self.header else "whole"


# --- writing ---------------------------------------------------------------------------------


def header_line(selection: str, filters: dict[str, Any], exported_at: str) -> bytes:
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}")
    return orjson.dumps({"aiaudit_export": VERSION, "selection": selection, "filters": filters,
                         "exported_at": exported_at})


def checkpoint_line(cp: ExportedCheckpoint) -> bytes:
    return orjson.dumps({"kind": "checkpoint", "origin": cp.origin, "size": cp.size, "note": cp.note,
                         "cosignatures": list(cp.cosignatures)})


def inclusion_line(inc: Inclusion) -> bytes:
    return orjson.dumps({"kind": "inclusion", "origin": inc.origin, "seq": inc.seq, "size": inc.size,
                         "proof": [base64.b64encode(h).decode("ascii") for h in inc.proof]})


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
    _exact_keys(obj, {"kind", "origin", "size", "note", "cosignatures"})
    lines = obj["cosignatures"]
    if type(lines) is not list or len(lines) > MAX_SIGNATURES or any(type(x) is not str or len(x) > 1000 for x in lines):
        raise ValueError(f"cosignatures is not a list of at most {MAX_SIGNATURES} signature lines")
    return ExportedCheckpoint(_text(obj, "origin", 1000), _count(obj, "size"), _text(obj, "note", MAX_NOTE_BYTES),
                              tuple(lines))


def _inclusion(obj: dict[str, Any]) -> Inclusion:
    _exact_keys(obj, {"kind", "origin", "seq", "size", "proof"})
    proof = obj["proof"]
    if type(proof) is not list or len(proof) > MAX_PROOF_HASHES:
        raise ValueError(f"proof is not a list of at most {MAX_PROOF_HASHES} hashes")
    hashes = []
    for h in proof:
        try:
            digest = base64.b64decode(h, validate=True) if type(h) is str else b""
        except (ValueError, binascii.Error):
            digest = b""
        if len(digest) != HASH_SIZE:
            raise ValueError("a proof hash is not base64 of 32 bytes")
        hashes.append(digest)
    return Inclusion(_text(obj, "origin", 1000), _count(obj, "seq"), _count(obj, "size"), tuple(hashes))


def _header(obj: dict[str, Any]) -> Header:
    _exact_keys(obj, {"aiaudit_export", "selection", "filters", "exported_at"})
    if obj["aiaudit_export"] != VERSION:
        raise ValueError(f"export version {str(obj['aiaudit_export'])[:20]!r}; this aiaudit reads version {VERSION}")
    if obj["selection"] not in SELECTIONS:
        raise ValueError(f"selection is not one of {SELECTIONS}")
    if type(obj["filters"]) is not dict:
        raise ValueError("filters is not an object")
    return Header(obj["selection"], obj["filters"], _text(obj, "exported_at", 64))


def add_line(into: ExportFile, line: bytes) -> None:
    """Parse one line into `into`. Raises ValueError naming what is wrong."""
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
    obj = orjson.loads(line)
    if type(obj) is not dict:
        raise ValueError("not a JSON object")
    if "aiaudit_export" in obj:
        if into.header is not None or into.records or into.checkpoints or into.proofs:
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
        else:
            raise ValueError(f"unknown kind {str(obj['kind'])[:40]!r}")
    else:
        into.records.append(Record.from_wire(line))
