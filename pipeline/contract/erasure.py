"""Erasure records: each destroyed content key, each refusal under a legal hold, each hold set or
lifted and each retention expiry is evidence, signed by whoever did it (pure).

    {"v": 1, "id": 32 hex, "at": RFC 3339 UTC ms, "action": "erase" | "refused" | "hold" | "release" | "expire",
     "subject": the person (actor, or the person an agent acted for) | null,
     "event_id": one record's event id | null,  (exactly one of the two)
     "reason": text (at most 1024 characters), "key_ids": [ids of the keys destroyed],
     "by": who, ["via": console,] "signature": {"kid", "sig"}}

signed with a key of the analyst key set under the domain `aiaudit/erasure/v1\\n`
(contract/analysts.py). Erasing destroys keys, never records: the chain and every record still
verify, and `aiaudit verify` lists these records as what was erased, when and by whom.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiaudit.pipeline.contract.signed_record import envelope
from aiaudit.pipeline.contract.signed_record import shape_problem as envelope_problem

ERASURE_VERSION = 1
ACTIONS = ("erase", "refused", "hold", "release", "expire")
MAX_REASON_CHARS = 1024
MAX_TARGET_CHARS = 256
FIELDS = {"v", "id", "at", "action", "subject", "event_id", "reason", "key_ids", "by", "via", "signature"}
REQUIRED = FIELDS - {"via", "signature"}
_KEY_ID = re.compile(r"[0-9a-f]{16}")


def erasure_message(*, action: str, subject: str | None = None, event_id: str | None = None, reason: str,
                    key_ids: list[str], at: datetime) -> dict[str, Any]:
    """An erasure record before it is signed. Raises ValueError for a field out of shape."""
    doc = {**envelope(ERASURE_VERSION, at), "action": action,
           "subject": subject, "event_id": event_id, "reason": reason, "key_ids": key_ids}
    problem = shape_problem({**doc, "by": "x"})
    if problem is not None:
        raise ValueError(problem)
    return doc


def shape_problem(doc: Any) -> str | None:
    """Why `doc` is not an erasure record in shape (signature aside), or None."""
    problem = envelope_problem(doc, version=ERASURE_VERSION, fields=FIELDS, required=REQUIRED)
    if problem is not None:
        return problem

    def target(value: Any) -> bool:
        return value is None or (type(value) is str and 0 < len(value) <= MAX_TARGET_CHARS)
    checks = (
        (doc["action"] in ACTIONS, f"action is not one of {ACTIONS}"),
        (target(doc["subject"]) and target(doc["event_id"]) and (doc["subject"] is None) != (doc["event_id"] is None),
         f"exactly one of subject and event_id, each 1-{MAX_TARGET_CHARS} characters"),
        (type(doc["reason"]) is str and 0 < len(doc["reason"].strip()) and len(doc["reason"]) <= MAX_REASON_CHARS,
         f"reason is not text of 1-{MAX_REASON_CHARS} characters"),
        (type(doc["key_ids"]) is list and len(doc["key_ids"]) <= 64
         and all(type(k) is str and _KEY_ID.fullmatch(k) for k in doc["key_ids"]), "key_ids is not a list of key ids"),
        (type(doc["by"]) is str and 0 < len(doc["by"]) <= 255, "by is not a name"),
    )
    return next((why for ok, why in checks if not ok), None)
