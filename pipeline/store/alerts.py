"""The scores, alerts and alert_status tables (A.8.16 monitoring). Rows and SQL (pure).

Status is append-only: each change is a new alert_status row (who, when, note); the current
status is the latest row, and the full history stays for the auditor.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiaudit.pipeline.contract import parse_ts

SCORE_COLUMNS = ("origin", "seq", "leaf_hash", "actor_id", "ts", "score", "severity", "model_version")
ALERT_COLUMNS = ("finding_uid", "detected_at", "severity", "actor_id", "origin", "seq", "leaf_hash", "score",
                 "model_version", "finding")
STATUS_COLUMNS = ("finding_uid", "status", "actor", "note", "at")


def score_row(obj: dict[str, Any]) -> list[Any]:
    """A scores-topic message (aiaudit.pipeline.score.step.Scored.row) -> scores-table row."""
    return [obj["origin"], int(obj["seq"]), obj["leaf_hash"], obj["actor_id"], parse_ts(obj["ts"]), float(obj["score"]),
            obj["severity"], obj["model_version"]]


def alert_row(finding: dict[str, Any], raw: bytes) -> list[Any]:
    """An OCSF finding from the alerts topic -> alerts-table row (the finding kept whole)."""
    chain = finding["unmapped"]["chain"]
    return [finding["finding_info"]["uid"], datetime.fromtimestamp(finding["time"] / 1000, timezone.utc),
            finding["severity"].lower(), finding["actor"]["user"]["uid"], chain["origin"], int(chain["seq"]),
            chain["leaf_hash"], float(finding["unmapped"]["score"]), finding["finding_info"]["analytic"]["version"],
            raw.decode("utf-8")]


STATUSES = ("open", "acknowledged", "resolved")


def status_row(finding_uid: str, status: str, by: str, note: str, at: datetime) -> list[Any]:
    return [finding_uid, status, by, note, at]


def status_message(finding_uid: str, status: str, by: str, note: str, at: datetime) -> dict[str, Any]:
    """What `aiaudit alerts ack|resolve|reopen` publishes (the sink stores it as a status row)."""
    return {"finding_uid": finding_uid, "status": status, "by": by, "note": note, "at": at.isoformat()}


def status_row_of(obj: dict[str, Any]) -> list[Any]:
    """An alert-status-topic message -> alert_status row. Raises ValueError for anything malformed."""
    uid, status, by, note = obj["finding_uid"], obj["status"], obj["by"], obj["note"]
    if not (isinstance(uid, str) and 0 < len(uid) <= 128 and status in STATUSES and isinstance(by, str)
            and 0 < len(by.strip()) <= 256 and isinstance(note, str) and len(note) <= 4096):
        raise ValueError("not an alert status change (uid, status, by, note)")
    return status_row(uid, status, by, note, parse_ts(obj["at"]))


DETECTORS_OF = ("arrayMap(d -> JSONExtractString(d, 'detector'), "
                "JSONExtractArrayRaw(a.finding, 'unmapped', 'detections'))")  # the detectors a finding names


def select_alerts(db: str, *, actor: str | None = None, severity: str | None = None, since: datetime | None = None,
                  until: datetime | None = None, status: str | None = None, detector: str | None = None,
                  limit: int = 100, group_by: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    """Alerts, newest first, each once, with its current status and who set it (and only those
    a given detector fired on, with `detector`). With `group_by` (names of GROUP_COLUMNS): one row
    per group over every matching alert (alerts, open, highest severity, latest), largest first;
    `limit` bounds the groups, never the alerts counted."""
    conds: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    for column, name, value, typ in (("a.actor_id", "actor", actor, "String"), ("a.severity", "severity", severity, "String"),
                                     ("a.detected_at >=", "since", since, "DateTime64(3, 'UTC')"),
                                     ("a.detected_at <", "until", until, "DateTime64(3, 'UTC')")):
        if value is not None:
            op = "" if column.endswith(("=", "<")) else " ="
            conds.append(f"{column}{op} {{{name}:{typ}}}")
            params[name] = value
    if detector is not None:
        conds.append(f"has({DETECTORS_OF}, {{detector:String}})")
        params["detector"] = detector
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
                   JSONExtractString(a.finding, 'finding_info', 'desc') AS explanation,
                   JSONExtractString(a.finding, 'unmapped', 'event_id') AS event_id,
                   arrayStringConcat({DETECTORS_OF}, ',') AS detectors,
                   if(s.n = 0, 'open', s.last_status) AS status, s.last_by AS status_by, s.last_at AS status_at
            FROM (SELECT * FROM {db}.alerts LIMIT 1 BY finding_uid) AS a
            LEFT JOIN (SELECT finding_uid, argMax(status, at) AS last_status, argMax(actor, at) AS last_by,
                              max(at) AS last_at, count() AS n FROM {db}.alert_status GROUP BY finding_uid) AS s
            ON a.finding_uid = s.finding_uid{where}
        ) {having}"""
    if group_by:
        unknown = set(group_by) - set(GROUP_COLUMNS)
        if unknown or len(set(group_by)) != len(group_by):
            raise ValueError(f"group by one or more of {', '.join(GROUP_COLUMNS)}, each once")
        keys = ", ".join(f"{GROUP_COLUMNS[g]} AS {g}" for g in group_by)
        sql = f"""
        SELECT {keys}, count() AS alerts, countIf(status = 'open') AS open,
               arrayElement(['', 'medium', 'high', 'critical'],
                            1 + max(indexOf(['medium', 'high', 'critical'], severity))) AS highest,
               max(detected_at) AS latest
        FROM ({sql}) GROUP BY {", ".join(group_by)}
        ORDER BY alerts DESC, latest DESC LIMIT {{limit:UInt32}}"""
    else:
        sql += "\n        ORDER BY detected_at DESC LIMIT {limit:UInt32}"
    return sql, params


GROUP_COLUMNS = {"actor": "actor_id", "model": "model_version", "detectors": "detectors", "severity": "severity",
                 "status": "status"}


def count_alert(db: str, finding_uid: str) -> tuple[str, dict[str, Any]]:
    return f"SELECT count() FROM {db}.alerts WHERE finding_uid = {{uid:String}}", {"uid": finding_uid}


def select_raised(db: str, finding_uid: str) -> tuple[str, dict[str, Any]]:
    """The alert as raised: when, by which model, why (the first line of its history)."""
    return (f"SELECT detected_at, model_version, severity, JSONExtractString(finding, 'finding_info', 'desc') "
            f"FROM {db}.alerts WHERE finding_uid = {{uid:String}} ORDER BY detected_at LIMIT 1", {"uid": finding_uid})


def select_status_history(db: str, finding_uid: str) -> tuple[str, dict[str, Any]]:
    return (f"SELECT status, actor, note, at FROM {db}.alert_status WHERE finding_uid = {{uid:String}} ORDER BY at",
            {"uid": finding_uid})
