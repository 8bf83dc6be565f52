"""Findings are signed by the scoring worker that raised them (pure).

The delivery agent delivers only findings whose signature verifies under a pinned scorer key, so a
writer to the alerts topic (or the retries and dead-letter topics) cannot have a forged finding
delivered everywhere as genuine. The signature travels beside the finding, never inside it:

    sig = Ed25519 over b"aiaudit/finding/v1\\n" + JCS(finding)
    {"key": base64 of the scorer's raw public key, "sig": base64 of sig}

in the alerts message's `aiaudit-finding-sig` header, and as the `sig` member of the agent's
retries and dead letters (which carry the finding as parsed JSON: body() makes its bytes again).
body() is compact JSON with sorted keys as orjson writes it (findings hold floats, which RFC 8785
as implemented here refuses): the same bytes for the same finding after any JSON round trip.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DOMAIN = b"aiaudit/finding/v1\n"
HEADER = "aiaudit-finding-sig"


def body(finding: dict[str, Any]) -> bytes:
    return orjson.dumps(finding, option=orjson.OPT_SORT_KEYS)


def sign_finding(finding: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes_raw()
    return {"key": base64.b64encode(raw).decode("ascii"),
            "sig": base64.b64encode(key.sign(DOMAIN + body(finding))).decode("ascii")}


def header_value(signature: dict[str, str]) -> bytes:
    return orjson.dumps(signature)


def from_headers(headers: Any) -> Any:
    """The signature object of a Kafka message's headers (a list of pairs or a mapping), or None."""
    pairs = headers.items() if hasattr(headers, "items") else (headers or [])
    for name, value in pairs:
        if name == HEADER and isinstance(value, bytes) and len(value) <= 512:
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
    return None


def signature_problem(finding: dict[str, Any], signature: Any, keys: Sequence[bytes]) -> str | None:
    """Why `finding` is not signed by one of the pinned scorer `keys` (None when it is)."""
    if signature is None:
        return "unsigned finding: no scoring worker's signature"
    if not isinstance(signature, dict) or set(signature) != {"key", "sig"} or \
            not all(isinstance(v, str) and len(v) < 200 for v in signature.values()):
        return "malformed finding signature"
    try:
        key, sig = base64.b64decode(signature["key"], validate=True), base64.b64decode(signature["sig"], validate=True)
    except (ValueError, binascii.Error):
        return "malformed finding signature"
    if key not in keys:
        return "finding signed by a key that is not a pinned scoring worker's"
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig, DOMAIN + body(finding))
    except (InvalidSignature, ValueError):
        return "the finding's signature does not verify: it was forged or changed"
    return None
