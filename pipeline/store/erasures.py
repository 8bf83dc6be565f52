"""The erasures table: every erasure, refusal, legal hold and retention expiry, from the erasure
chain (contract/erasure.py). Rows and SQL (pure)."""

from __future__ import annotations

from typing import Any

from aiaudit.pipeline.contract import parse_ts
from aiaudit.pipeline.contract.erasure import shape_problem
from aiaudit.pipeline.names import ERASURES_TABLE

COLUMNS = ("erasure_id", "at", "action", "subject", "event_id", "reason", "key_ids", "by", "via")


def row(obj: Any) -> list[Any]:
    """An erasure-topic message (parsed) -> erasures row. Raises ValueError for one out of shape."""
    problem = shape_problem({k: v for k, v in obj.items() if k != "signature"} if isinstance(obj, dict) else obj)
    if problem is not None:
        raise ValueError(f"not an erasure record: {problem}")
    return [obj["id"], parse_ts(obj["at"]), obj["action"], obj["subject"] or "", obj["event_id"] or "", obj["reason"],
            list(obj["key_ids"]), obj["by"], obj.get("via", "")]


def select_erasures(db: str, *, subject: str | None = None, event_id: str | None = None,
                    limit: int = 1000) -> tuple[str, dict[str, Any]]:
    """Erasure records, oldest first (each once)."""
    where_sql: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if subject is not None:
        where_sql.append("subject = {subject:String}")
        params["subject"] = subject
    if event_id is not None:
        where_sql.append("event_id = {event_id:String}")
        params["event_id"] = event_id
    cond = f"WHERE {' AND '.join(where_sql)}" if where_sql else ""
    return (f"SELECT at, action, subject, event_id, reason, key_ids, by, via, erasure_id FROM {db}.{ERASURES_TABLE} "
            f"{cond} ORDER BY at LIMIT 1 BY erasure_id LIMIT {{limit:UInt32}}", params)
