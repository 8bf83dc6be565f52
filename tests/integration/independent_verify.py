"""A verifier written only from the record formats' spec (v1, v2), sharing no code with aiaudit.

Input: a whole export (JSONL: a header, records {origin, seq, payload, sig, leaf_hash}, and
checkpoint lines), a JWKS, the checkpoint public key and the emitter key set. It uses the `rfc8785` package (an
independent JCS implementation), hashlib and `cryptography`, and RFC 6962's Merkle tree hash
and the C2SP signed-note rules as written in docs/formats.md and docs/auditor.md.
"""

from __future__ import annotations

import base64
import hashlib
import json

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1: MTH of a list of leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _check_note(note: str, origin: str, checkpoint_pub: bytes) -> tuple[int, bytes]:
    """The (size, root) of a checkpoint note signed by the log key named `origin` (C2SP signed-note)."""
    text, _, sigs = note.partition("\n\n")
    text += "\n"
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + checkpoint_pub).digest()[:4]
    good = False
    for line in sigs.splitlines():
        name, blob = line.removeprefix("\u2014 ").split(" ")
        raw = base64.b64decode(blob)
        if name == origin and raw[:4] == key_id:
            Ed25519PublicKey.from_public_bytes(checkpoint_pub).verify(raw[4:], text.encode())
            good = True
    assert good, "checkpoint not signed by the log key"
    lines = text.split("\n")
    assert lines[0] == origin
    return int(lines[1]), base64.b64decode(lines[2])


def _keys(jwks: dict) -> dict[str, tuple[Ed25519PublicKey, str | None]]:
    """kid (RFC 7638) -> (public key, the emitter it speaks for, in an emitter key set)."""
    keys = {}
    for jwk in jwks["keys"]:
        members = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":"), sort_keys=True)
        kid = base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()
        keys[kid] = (Ed25519PublicKey.from_public_bytes(_b64url(jwk["x"])), jwk.get("emitter"))
    return keys


def _check_emitter(event: dict, emitter_keys: dict[str, tuple[Ed25519PublicKey, str | None]]) -> None:
    """docs/event-contract.md, Emitter signatures: Ed25519 over the domain tag and the JCS of the
    event without its signature, by a key registered for the event's emitter id."""
    member = event["emitter_signature"]
    key, name = emitter_keys[member["kid"]]
    emitter_id = event["emitter_id"]
    assert emitter_id == name or emitter_id.startswith((name + "-", name + "/")), "emitter key of another emitter"
    body = {k: v for k, v in event.items() if k != "emitter_signature"}
    key.verify(_b64url(member["sig"]), b"aiaudit/event/v1\n" + rfc8785.dumps(body))


def _check_header(header: dict, record_lines: list[str], operator_pub: bytes) -> None:
    """docs/formats.md, the export file: the version 3 header is sealed by the operator key over JCS of
    the header without its seal (domain tag aiaudit/export-header/v1), and states the record lines'
    count per origin and the SHA-256 of their bytes in file order, each ended by one LF."""
    assert header["aiaudit_export"] == 3, "not a sealed (version 3) export"
    seal = header["seal"]
    assert base64.b64decode(seal["key"]) == operator_pub, "sealed by another operator key"
    body = {k: v for k, v in header.items() if k != "seal"}
    Ed25519PublicKey.from_public_bytes(operator_pub).verify(base64.b64decode(seal["sig"]),
                                                            b"aiaudit/export-header/v1\n" + rfc8785.dumps(body))
    counts: dict[str, int] = {}
    for line in record_lines:
        origin = json.loads(line)["origin"]
        counts[origin] = counts.get(origin, 0) + 1
    assert counts == header["records"], "record lines removed or added after export"
    digest = hashlib.sha256("".join(line + "\n" for line in record_lines).encode()).hexdigest()
    assert digest == header["records_sha256"], "record lines changed after export"


def verify(export_lines: list[str], jwks: dict, checkpoint_pub: bytes | None = None,
           emitter_jwks: dict | None = None, operator_pub: bytes | None = None, kinds: dict | None = None) -> int:
    """Returns the number of records checked; raises AssertionError on the first problem (or the
    library's InvalidSignature). With `emitter_jwks`, every AI request must carry its emitter's
    signature; with `operator_pub`, the header must seal exactly the file's record lines; `kinds`
    (a dict) gets the count of v2 records of each kind."""
    kinds = {} if kinds is None else kinds
    if operator_pub is not None:
        header = json.loads(export_lines[0])
        _check_header(header, [x for x in export_lines[1:] if '"payload"' in x and '"kind"' not in x], operator_pub)
    keys = {kid: key for kid, (key, _) in _keys(jwks).items()}
    emitter_keys = _keys(emitter_jwks) if emitter_jwks is not None else None
    prev_by_origin: dict[str, tuple[int, str]] = {}
    n = 0
    leaves: dict[str, list[bytes]] = {}
    notes: list[dict] = []
    for line in export_lines:
        rec = json.loads(line)
        if "aiaudit_export" in rec:
            assert rec["selection"] == "whole"
            continue
        if rec.get("kind") == "checkpoint":
            notes.append(rec)
            continue
        payload, sig = base64.b64decode(rec["payload"]), base64.b64decode(rec["sig"])
        body = json.loads(payload)
        assert rfc8785.dumps(body) == payload, "payload is not JCS"
        assert body["v"] in (1, 2) and body["origin"] == rec["origin"] and body["seq"] == rec["seq"]
        if body["v"] == 1:  # an AI request
            keys[body["kid"]].verify(sig, b"aiaudit/record/v1\n" + payload)
        else:  # any other kind of evidence: the kind is in the domain tag, the message in base64
            kind = body["kind"]
            assert kind.isascii() and kind.replace("_", "").isalpha() and kind.islower(), "kind name"
            keys[body["kid"]].verify(sig, b"aiaudit/record/v2/" + kind.encode() + b"\n" + payload)
            event = body["event"]
            assert set(event) == {"value", "key", "headers"}
            base64.b64decode(event["value"], validate=True)
            kinds[kind] = kinds.get(kind, 0) + 1
        leaf = hashlib.sha256(b"\x00" + payload + sig).hexdigest()
        assert leaf == rec["leaf_hash"], "leaf hash"
        last_seq, last_leaf = prev_by_origin.get(rec["origin"], (-1, "0" * 64))
        assert body["seq"] == last_seq + 1, f"seq {body['seq']} after {last_seq}"
        assert body["prev"] == last_leaf, "prev link"
        prev_by_origin[rec["origin"]] = (body["seq"], leaf)
        if emitter_keys is not None and body["v"] == 1:
            _check_emitter(body["event"], emitter_keys)
        leaves.setdefault(rec["origin"], []).append(bytes.fromhex(leaf))
        n += 1
    if checkpoint_pub is not None:
        assert notes, "no checkpoints in the export"
        for cp in notes:
            size, root = _check_note(cp["note"], cp["origin"], checkpoint_pub)
            have = leaves.get(cp["origin"], [])
            assert size == cp["size"] and size <= len(have), f"{cp['origin']}: checkpoint at {size} covers missing records"
            assert _mth(have[:size]) == root, f"{cp['origin']}: root at {size}"
    return n
