"""A verifier written only from the record format v1 spec, sharing no code with aiaudit.

Input: an export (JSONL of origin, seq, payload, sig, leaf_hash) and a JWKS. It uses the
`rfc8785` package (an independent JCS implementation), hashlib and `cryptography`.
"""

from __future__ import annotations

import base64
import hashlib
import json

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def verify(export_lines: list[str], jwks: dict) -> int:
    """Returns the number of records checked; raises AssertionError on the first problem."""
    keys = {}
    for jwk in jwks["keys"]:
        members = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":"), sort_keys=True)
        kid = base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()
        keys[kid] = Ed25519PublicKey.from_public_bytes(_b64url(jwk["x"]))
    prev_by_origin: dict[str, tuple[int, str]] = {}
    n = 0
    for line in export_lines:
        rec = json.loads(line)
        payload, sig = base64.b64decode(rec["payload"]), base64.b64decode(rec["sig"])
        body = json.loads(payload)
        assert rfc8785.dumps(body) == payload, "payload is not JCS"
        assert body["v"] == 1 and body["origin"] == rec["origin"] and body["seq"] == rec["seq"]
        keys[body["kid"]].verify(sig, b"aiaudit/record/v1\n" + payload)
        leaf = hashlib.sha256(b"\x00" + payload + sig).hexdigest()
        assert leaf == rec["leaf_hash"], "leaf hash"
        last_seq, last_leaf = prev_by_origin.get(rec["origin"], (-1, "0" * 64))
        assert body["seq"] == last_seq + 1, f"seq {body['seq']} after {last_seq}"
        assert body["prev"] == last_leaf, "prev link"
        prev_by_origin[rec["origin"]] = (body["seq"], leaf)
        n += 1
    return n
