"""Alerts and their status (A.8.16 "detected and resolved"): list, acknowledge, resolve.

Status is append-only: each change is a new row (who, when, note), the current status is the
latest row, and the full history stays for the auditor. Values travel as query parameters.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from clickhouse_connect.driver.client import Client

from pipeline import store
from pipeline.errors import ConfigError, StoreError
from pipeline.settings import Settings

STATUSES = ("open", "acknowledged", "resolved")
SEVERITIES = ("medium", "high", "critical")


def list_alerts(client: Client, settings: Settings, *, actor: str | None = None, severity: str | None = None,
                since: datetime | None = None, until: datetime | None = None, status: str | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
    """Alerts, newest first, each once, with its current status and who set it."""
    db = store.database(settings)
    conds, params = [], {"limit": limit}
    for column, name, value, typ in (("a.actor_id", "actor", actor, "String"), ("a.severity", "severity", severity, "String"),
                                     ("a.detected_at >=", "since", since, "DateTime64(3, 'UTC')"),
                                     ("a.detected_at <", "until", until, "DateTime64(3, 'UTC')")):
        if value is not None:
            op = "" if column.endswith(("=", "<")) else " ="
            conds.append(f"{column}{op} {{{name}:{typ}}}")
            params[name] = value
    having = ""
    if status is not None:
        having = "WHERE status = {status:String}"
        params["status"] = status
    where = (" WHERE " + " AND ".join(conds)) if conds else ""
    sql = f"""
        SELECT * FROM (
            SELECT a.finding_uid AS finding_uid, a.detected_at AS detected_at, a.severity AS severity,
                   a.actor_id AS actor_id, a.score AS score, a.model_version AS model_version,
                   a.origin AS origin, a.seq AS seq, a.leaf_hash AS leaf_hash,
                   if(s.n = 0, 'open', s.last_status) AS status, s.last_by AS status_by, s.last_at AS status_at
            FROM (SELECT * FROM {db}.alerts LIMIT 1 BY finding_uid) AS a
            LEFT JOIN (SELECT finding_uid, argMax(status, at) AS last_status, argMax(actor, at) AS last_by,
                              max(at) AS last_at, count() AS n FROM {db}.alert_status GROUP BY finding_uid) AS s
            ON a.finding_uid = s.finding_uid{where}
        ) {having}
        ORDER BY detected_at DESC LIMIT {{limit:UInt32}}"""
    names, rows = store.query_rows(client, sql, params)
    return [dict(zip(names, row)) for row in rows]


def set_status(client: Client, settings: Settings, finding_uid: str, status: str, *, by: str, note: str = "",
               at: datetime | None = None) -> None:
    """Append a status change. Raises ConfigError for an unknown alert, status or empty `by`."""
    if status not in STATUSES:
        raise ConfigError(f"status must be one of {', '.join(STATUSES)}")
    if not by.strip():
        raise ConfigError("say who changes the status (--by)")
    db = store.database(settings)
    _, found = store.query_rows(client, f"SELECT count() FROM {db}.alerts WHERE finding_uid = {{uid:String}}",
                                {"uid": finding_uid})
    if not found[0][0]:
        raise ConfigError(f"no alert {finding_uid}")
    try:
        client.insert(f"{db}.alert_status", [[finding_uid, status, by, note, at or datetime.now(timezone.utc)]],
                      column_names=["finding_uid", "status", "actor", "note", "at"])
    except Exception as exc:  # clickhouse-connect raises its own errors and OSError
        raise StoreError(f"recording status of {finding_uid}: {exc}") from exc


def status_history(client: Client, settings: Settings, finding_uid: str) -> list[dict[str, Any]]:
    db = store.database(settings)
    names, rows = store.query_rows(client, f"SELECT status, actor, note, at FROM {db}.alert_status "
                                           "WHERE finding_uid = {uid:String} ORDER BY at", {"uid": finding_uid})
    return [dict(zip(names, row)) for row in rows]
