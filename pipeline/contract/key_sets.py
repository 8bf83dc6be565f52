"""A key-set message (pure): an emitter or analyst key set a chain worker checks with, as it first
used it (topic ai.audit.key-sets, chained as kind `key_set`): whom the pipeline trusted, from when.

The set is kept whole (its JCS form) and named by its SHA-256, so each change can be shown as the
keys it added and retired (store/key_sets.py), and checked against the set an auditor was given.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from aiaudit.pipeline import jcs
from aiaudit.pipeline.errors import NotCanonicalizable
from aiaudit.pipeline.keys import thumbprint

EMITTERS, ANALYSTS = "emitters", "analysts"
KEY_SETS = (EMITTERS, ANALYSTS)


def canonical(doc: dict[str, Any]) -> bytes:
    """The key set document as it is kept and hashed: JCS (keys sorted when a member is not JCS-able)."""
    try:
        return jcs.canonicalize(doc)
    except NotCanonicalizable:
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def digest(doc: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(doc)).hexdigest()


def kid_of(jwk: dict[str, Any]) -> str:
    """A key's id: its RFC 7638 thumbprint (what records and signatures name), whatever `kid` it claims."""
    try:
        return thumbprint(jwk)
    except (KeyError, TypeError, ValueError):
        return str(jwk.get("kid", ""))[:64]


def message(key_set: str, doc: dict[str, Any], *, first_used_at: str, worker: str) -> dict[str, Any]:
    """The topic message for a key set a chain worker checks with (`doc`, already shape-checked)."""
    if key_set not in KEY_SETS:
        raise ValueError(f"key_set must be one of {', '.join(KEY_SETS)}")
    text = canonical(doc)
    return {"v": 1, "key_set": key_set, "sha256": hashlib.sha256(text).hexdigest(),
            "kids": sorted(kid_of(k) for k in doc.get("keys", []) if isinstance(k, dict)),
            "jwks_json": text.decode(), "first_used_at": first_used_at, "worker": worker}
