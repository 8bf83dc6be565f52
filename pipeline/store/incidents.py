"""The incidents table: incident updates from ai.audit.incidents (OCSF Incident Findings, kept
whole). Rows and SQL (pure).

An incident's rows are its updates; the one with the most findings (then the latest) is the
incident as it stands. Its status (acknowledged, resolved) is appended to alert_status under the
incident's uid, like an alert's; an incident without a status row is open. Apart from its
status, an incident is `quiet` once its last finding is older than the quiet time (a later
finding of its identity and family opens the next incident, linked to it).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson

from aiaudit.detectors.incidents import FAMILY, INCIDENT_CLASS_UID, QUIET_S

COLUMNS = ("incident_uid", "activity", "updated_at", "identity", "family", "severity", "score", "findings",
           "opened_at", "window_start", "last_seen", "page", "previous", "incident")
ACTIVITIES = {1: "create", 2: "update", 3: "close"}
SEVERITIES = ("medium", "high", "critical")
FAMILIES = tuple(sorted({*FAMILY.values(), "other"}))


def _when(iso: Any) -> datetime:
    if not isinstance(iso, str) or len(iso) > 40:
        raise ValueError("a time must be an RFC 3339 string")
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(timezone.utc)


def row(finding: dict[str, Any], raw: bytes) -> list[Any]:
    """An incidents-topic message -> table row. Raises ValueError/TypeError/KeyError on a bad shape."""
    inc = finding["unmapped"]["incident"]
    uid, identity, family = inc["uid"], inc["identity"], inc["family"]
    if not (isinstance(uid, str) and 0 < len(uid) <= 64 and isinstance(identity, str) and 0 < len(identity) <= 4096
            and family in FAMILIES and finding.get("class_uid") == INCIDENT_CLASS_UID):
        raise ValueError("not an incident update (uid, identity, family)")
    severity = str(finding["severity"]).lower()
    findings, score, time_ms = inc["findings"], inc["score"], finding["time"]
    if severity not in SEVERITIES or type(findings) is not int or not 0 < findings < 2**32 or \
            type(score) not in (int, float) or not 0 <= score <= 1 or type(time_ms) is not int or not 0 < time_ms < 10**14:
        raise ValueError("incident severity, findings, score or time malformed")
    previous = inc.get("previous") or ""
    if not isinstance(previous, str) or len(previous) > 64:
        raise ValueError("previous must be an incident uid")
    return [uid, ACTIVITIES[finding["activity_id"]], datetime.fromtimestamp(time_ms / 1000, timezone.utc), identity,
            family, severity, float(score), findings, _when(inc["opened_at"]), _when(inc["window_start"]),
            _when(inc["last_seen"]), bool(finding["unmapped"].get("page") is True), previous, raw.decode("utf-8")]


def stored_incident(raw: str) -> dict[str, Any]:
    """A stored row's incident update, checked to be one (the shape the sink stores, and what
    `aiaudit incidents show` reads of it). Raises ValueError for a row anyone else wrote."""
    try:
        doc = orjson.loads(raw)
        row(doc, raw.encode())
        info, unmapped = doc["finding_info_list"][0], doc["unmapped"]
        if not (isinstance(info.get("title"), str) and isinstance(unmapped["incident"]["records"], list)
                and isinstance(unmapped["chain"]["origin"], str) and type(unmapped["chain"]["seq"]) is int):
            raise ValueError("title, records or record coordinates malformed")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ValueError(f"not an incident update ({type(exc).__name__}: {str(exc)[:120]})") from None
    return doc  # type: ignore[no-any-return]  # checked above


def _current(db: str) -> str:
    """Each incident as it stands (the update with the most findings), with its status and its
    page: paged (delivered to a destination), held by the budget, asked (no decision stored yet)."""
    return f"""
    SELECT i.incident_uid AS uid, i.identity AS identity, i.family AS family, i.severity AS severity,
           i.score AS score, i.findings AS findings, i.opened_at AS opened_at, i.window_start AS window_start,
           i.last_seen AS last_seen, i.previous AS previous, p.paged AS page_asked, p.paged_at AS page_asked_at,
           if(s.n = 0, 'open', s.last_status) AS status,
           i.activity = 'close' OR i.last_seen < now64(3) - toIntervalSecond({{quiet:UInt32}}) AS quiet,
           s.last_by AS status_by, i.updated_at AS updated_at,
           multiIf(d.delivered, 'paged', d.held, 'held by the budget', p.paged, 'asked', '') AS page_state,
           i.incident AS incident
    FROM (SELECT * FROM {db}.incidents ORDER BY findings DESC, activity = 'close' DESC, updated_at DESC
          LIMIT 1 BY incident_uid) AS i
    LEFT JOIN (SELECT incident_uid, max(page) AS paged, minIf(updated_at, page) AS paged_at FROM {db}.incidents
               GROUP BY incident_uid) AS p
    ON i.incident_uid = p.incident_uid
    LEFT JOIN (SELECT finding_uid, max(outcome = 'delivered') AS delivered, max(outcome = 'held') AS held
               FROM {db}.deliveries GROUP BY finding_uid) AS d
    ON i.incident_uid = d.finding_uid
    LEFT JOIN (SELECT finding_uid, argMax(status, at) AS last_status, argMax(actor, at) AS last_by,
                      count() AS n FROM {db}.alert_status GROUP BY finding_uid) AS s
    ON i.incident_uid = s.finding_uid"""


def select_incidents(db: str, *, identity: str | None = None, family: str | None = None, severity: str | None = None,
                     status: str | None = None, paged: bool | None = None, since: datetime | None = None,
                     until: datetime | None = None, changed_since: datetime | None = None,
                     limit: int = 100) -> tuple[str, dict[str, Any]]:
    """Incidents as they stand, most recently active first, each once, with their status (open,
    or the last an analyst set) and whether they are quiet. `changed_since`: only those a scorer
    updated since then (its clock, not the events'). `paged`: only those that asked
    for their page (the pager's decision is in the deliveries: delivered or held)."""
    conds: list[str] = []
    params: dict[str, Any] = {"limit": limit, "quiet": int(QUIET_S)}
    for cond, name, value, typ in (("identity =", "identity", identity, "String"),
                                   ("family =", "family", family, "String"),
                                   ("severity =", "severity", severity, "String"),
                                   ("status =", "status", status, "String"),
                                   ("last_seen >=", "since", since, "DateTime64(3, 'UTC')"),
                                   ("opened_at <", "until", until, "DateTime64(3, 'UTC')"),
                                   ("updated_at >=", "changed_since", changed_since, "DateTime64(3, 'UTC')")):
        if value is not None:
            conds.append(f"{cond} {{{name}:{typ}}}")
            params[name] = value
    if paged is not None:
        conds.append("page_asked" if paged else "NOT page_asked")
    where = (" WHERE " + " AND ".join(conds)) if conds else ""
    sql = (f"SELECT * FROM ({_current(db)}){where}\n"
           "    ORDER BY last_seen DESC, uid LIMIT {limit:UInt32}")
    return sql, params


def select_incident(db: str, uid: str) -> tuple[str, dict[str, Any]]:
    """One incident as it stands (none: no such incident)."""
    return (f"SELECT * FROM ({_current(db)}) WHERE uid = {{uid:String}}",
            {"uid": uid, "quiet": int(QUIET_S)})


def select_updates(db: str, uid: str) -> tuple[str, dict[str, Any]]:
    """An incident's updates, oldest first, each once."""
    return (f"""
        SELECT updated_at AS at, activity, findings, severity, page
        FROM {db}.incidents WHERE incident_uid = {{uid:String}}
        GROUP BY updated_at, activity, findings, severity, page ORDER BY findings, at""", {"uid": uid})
