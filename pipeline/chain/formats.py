"""Stored records of either format (pure): parse, the signed bytes, and the kind.

v1 (chain/record.py) is an AI request; v2 (chain/record_v2.py) names its kind. Readers that meet
records of every chain (the verifier, resume) go through here; writers use the format modules.
"""

from __future__ import annotations

from typing import Any

import orjson

from aiaudit.pipeline.chain import record, record_v2
from aiaudit.pipeline.chain.kinds import REQUEST


def parse_stored(payload: bytes) -> dict[str, Any]:
    """A stored payload of either version. Raises ValueError when it is neither."""
    obj = orjson.loads(payload)  # a JSONDecodeError is a ValueError; parsed once (verify's hot path)
    if isinstance(obj, dict) and obj.get("v") == record_v2.RECORD_VERSION:
        return record_v2.check_parsed(obj)
    if not isinstance(obj, dict) or set(obj) != record.PAYLOAD_KEYS:
        raise ValueError("payload is not a v1 record object")
    if obj["v"] != record.RECORD_VERSION:
        raise ValueError(f"unsupported record version {obj['v']!r}")
    return obj


def kind_of(obj: dict[str, Any]) -> str:
    """What a parsed payload is evidence of: v1 records are AI requests."""
    return REQUEST if obj["v"] == record.RECORD_VERSION else str(obj["kind"])


def signing_input(obj: dict[str, Any], payload: bytes) -> bytes:
    """The bytes the record's signature signs: its payload after its version's (and kind's) domain tag."""
    if obj["v"] == record.RECORD_VERSION:
        return record.signing_input(payload)
    return record_v2.signing_input(obj["kind"], payload)
