"""The deliveries table: every delivery outcome of a finding (delivered where, when, with what
answer; failed and retried; suppressed; dead-lettered), from ai.audit.deliveries. Rows and SQL (pure).

The agent may write a record twice after a restart (Faust is at least once); queries take one
per (delivery, attempt, outcome)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson

COLUMNS = ("delivery_uid", "finding_uid", "destination", "outcome", "attempt", "at", "status", "response", "detail")
OUTCOMES = ("delivered", "failed", "suppressed", "dead_lettered", "held")  # held: by the paging budget


def row(obj: dict[str, Any]) -> list[Any]:
    """A deliveries-topic message -> table row. Raises ValueError/TypeError/KeyError on a bad shape."""
    for name, limit in (("delivery_uid", 64), ("finding_uid", 128), ("destination", 64), ("status", 64),
                        ("response", 500)):
        if type(obj[name]) is not str or len(obj[name]) > limit:
            raise TypeError(f"{name} must be a string of at most {limit} characters")
    if obj["outcome"] not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
    attempt, at = obj["attempt"], obj["at"]
    if type(attempt) is not int or not 0 <= attempt <= 100 or type(at) not in (int, float) or not 0 < at < 1e11:
        raise ValueError("attempt 0-100 and at (epoch seconds) required")
    detail = obj.get("detail", {})
    if not isinstance(detail, dict):
        raise TypeError("detail must be an object")
    return [obj["delivery_uid"], obj["finding_uid"], obj["destination"], obj["outcome"], attempt,
            datetime.fromtimestamp(at, timezone.utc), obj["status"], obj["response"],
            orjson.dumps(detail).decode()[:2000]]


def select_for_finding(db: str, finding_uid: str) -> tuple[str, dict[str, Any]]:
    """A finding's delivery records, oldest first, each once."""
    return (f"""
        SELECT destination, outcome, attempt, min(at) AS at, any(status) AS status, any(response) AS response,
               any(detail) AS detail, delivery_uid
        FROM {db}.deliveries WHERE finding_uid = {{uid:String}}
        GROUP BY delivery_uid, destination, attempt, outcome
        ORDER BY at, attempt""", {"uid": finding_uid})
