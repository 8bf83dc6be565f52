"""The access_log table: every read of evidence through aiaudit, from the access chain. Rows and
SQL (pure); the records are made by pipeline/contract/access.py and written by store/access_log.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiaudit.pipeline.contract import parse_ts
from aiaudit.pipeline.contract.access import shape_problem
from aiaudit.pipeline.names import ACCESS_TABLE

COLUMNS = ("access_id", "at", "principal", "via", "op", "what", "what_sha256", "row_count", "digest", "outcome",
           "host")


def row(obj: Any) -> list[Any]:
    """An access-topic message (parsed) -> access_log row. Raises ValueError for one out of shape."""
    problem = shape_problem({k: v for k, v in obj.items() if k != "signature"} if isinstance(obj, dict) else obj)
    if problem is not None:
        raise ValueError(f"not an access record: {problem}")
    return [obj["id"], parse_ts(obj["at"]), obj["by"], obj.get("via", ""), obj["op"], obj["what"], obj["what_sha256"],
            obj["rows"], obj["digest"], obj["outcome"], obj["host"]]


def select_access(db: str, *, principal: str | None = None, op: str | None = None, since: datetime | None = None,
                  until: datetime | None = None, limit: int = 100) -> tuple[str, dict[str, Any]]:
    """Access records, newest first."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if principal is not None:
        where.append("principal = {principal:String}")
        params["principal"] = principal
    if op is not None:
        where.append("op = {op:String}")
        params["op"] = op
    if since is not None:
        where.append("at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if until is not None:
        where.append("at < {until:DateTime64(3, 'UTC')}")
        params["until"] = until
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    return (f"SELECT at, principal, via, op, outcome, row_count AS rows, digest, what, host, access_id "
            f"FROM {db}.{ACCESS_TABLE} {cond} ORDER BY at DESC LIMIT 1 BY access_id LIMIT {{limit:UInt32}}", params)
