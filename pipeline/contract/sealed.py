"""Content sealed under the keys of the people it is about, so that destroying a key erases it
everywhere a copy went (the content topic, the store, an export made later). Pure.

A route that keeps content (`full`) or its commitment key (`commitments`) seals them: the content
key is derived from every subject's key (the actor, and the person an agent acted for) and the
record's own key,

    content_key = HKDF-SHA256(ikm = len||K_subject1 || len||K_subject2 || ... || len||K_record,
                              salt = "aiaudit/content/v1", info = event_id, 32 bytes)
    sealed      = base64(nonce (12) || AES-256-GCM(content_key, nonce, JSON content, aad = event_id))

so the content is readable only while all of them exist: erasing a subject (`aiaudit erase
--subject`) or the one record (`--event-id`, for a person named inside a prompt) destroys one key
and with it every copy. The keys are kept outside Kafka (contract/subject_keys.py); compaction or
retention of a topic is not erasure, key destruction is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SALT = b"aiaudit/content/v1"
KEY_BYTES = 32
MAX_SEALED_CHARS = 24 * 1024 * 1024


def key_id(key: bytes) -> str:
    """A key's public name: the first 16 hex of SHA-256 over it (says which key sealed, not the key)."""
    return hashlib.sha256(b"aiaudit/content-key-id\n" + key).hexdigest()[:16]


def content_key(subject_keys: Sequence[bytes], record_key: bytes, event_id: str) -> bytes:
    if not subject_keys or any(len(k) != KEY_BYTES for k in (*subject_keys, record_key)):
        raise ValueError("content keys are 32 bytes, and there is at least one subject")
    ikm = b"".join(len(k).to_bytes(2, "big") + k for k in (*subject_keys, record_key))
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=SALT, info=event_id.encode()).derive(ikm)


def seal(key: bytes, event_id: str, content: dict[str, Any]) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, orjson.dumps(content), event_id.encode())).decode()


def open_sealed(key: bytes, event_id: str, sealed: str) -> dict[str, Any]:
    """The content, or ValueError when the key is not the one it was sealed with or it was changed."""
    if not isinstance(sealed, str) or len(sealed) > MAX_SEALED_CHARS:
        raise ValueError("not sealed content")
    try:
        raw = base64.b64decode(sealed, validate=True)
        doc = orjson.loads(AESGCM(key).decrypt(raw[:12], raw[12:], event_id.encode()))
    except (binascii.Error, InvalidTag, ValueError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"the content does not open with this key ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise ValueError("sealed content is not a JSON object")
    return doc
