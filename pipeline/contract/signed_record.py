"""What access and erasure records share (pure): their envelope of version, id and time, each
checked the same way; their own fields are checked by their modules."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any

_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def utc_ms(moment: datetime) -> str:
    """RFC 3339 UTC to the millisecond, the form these records carry (`2026-12-04T09:30:01.234Z`)."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def envelope(version: int, at: datetime) -> dict[str, Any]:
    return {"v": version, "id": uuid.uuid4().hex, "at": utc_ms(at)}


def shape_problem(doc: Any, *, version: int, fields: set[str], required: set[str]) -> str | None:
    """Why `doc` is not a record of these fields in its envelope (fields present, version, id,
    time), or None: the record's own fields are checked by its module after this."""
    if type(doc) is not dict:
        return "not a JSON object"
    extra, missing = set(doc) - fields, required - set(doc)
    if extra or missing:
        return f"fields {sorted(extra)} not allowed, {sorted(missing)} missing"[:300]
    if not (doc["v"] == version and type(doc["v"]) is int):
        return f"v is not {version}"
    if not (type(doc["id"]) is str and re.fullmatch(r"[0-9a-f]{32}", doc["id"])):
        return "id is not 32 hex"
    if not (type(doc["at"]) is str and _AT.fullmatch(doc["at"])):
        return "at is not RFC 3339 UTC to the millisecond"
    return None
