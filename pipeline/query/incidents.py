"""Incidents (findings grouped per identity and family, detectors/incidents.py): list, show,
acknowledge, resolve, and each one's history.

An incident's status changes travel like an alert's (the alert-status topic, stored by the sink,
appended, never overwritten), under the incident's uid. Its history is its updates (opened,
each batch of findings it grew by, closed), its page (delivered where, or held by the budget)
and its status changes, in time order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from aiaudit.pipeline import store
from aiaudit.pipeline.contract.analysts import StatusSigner
from aiaudit.pipeline.errors import ConfigError, StoreError
from aiaudit.pipeline.query.alerts import set_status
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import alerts, deliveries, incidents

UID_CHARS = frozenset("0123456789abcdef")


def _uid(uid: str) -> str:
    if not 0 < len(uid) <= 64 or not set(uid) <= UID_CHARS:
        raise ConfigError(f"{uid[:80]!r} is not an incident uid (hex, as `aiaudit incidents list` shows)")
    return uid


def list_incidents(client: Client, settings: Settings, *, identity: str | None = None, family: str | None = None,
                   severity: str | None = None, status: str | None = None, paged: bool | None = None,
                   since: datetime | None = None, until: datetime | None = None,
                   changed_since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
    sql, params = incidents.select_incidents(store.database(settings), identity=identity, family=family,
                                             severity=severity, status=status, paged=paged, since=since,
                                             until=until, changed_since=changed_since, limit=limit)
    names, rows = store.query_rows(client, sql, params)
    return [dict(zip(names, row)) for row in rows]


def show_incident(client: Client, settings: Settings, uid: str) -> dict[str, Any]:
    """The incident as it stands, its update whole (`incident`: the OCSF Incident Finding).
    Raises ConfigError for an unknown incident."""
    names, rows = store.query_rows(client, *incidents.select_incident(store.database(settings), _uid(uid)))
    if not rows:
        raise ConfigError(f"no incident {uid}")
    found = dict(zip(names, rows[0]))
    try:
        found["incident"] = incidents.stored_incident(found["incident"])
    except ValueError as exc:
        raise StoreError(f"incident {uid}: its stored row {exc}; `aiaudit verify` checks the evidence it names") from None
    return found


def set_incident_status(settings: Settings, uid: str, status: str, *, signer: StatusSigner, by: str | None = None,
                        note: str = "", client: Client | None = None) -> dict[str, Any]:
    """Append a status change to the incident, signed by `signer` (checked to exist first when
    `client` is given)."""
    if client is not None:
        show_incident(client, settings, uid)
    return set_status(settings, _uid(uid), status, signer=signer, by=by, note=note)


def incident_history(client: Client, settings: Settings, uid: str) -> list[dict[str, Any]]:
    """The incident's updates, its page (delivered, failed, held by the budget) and its status
    changes, in time order. Raises ConfigError for an unknown incident."""
    show_incident(client, settings, uid)
    db = store.database(settings)
    names, rows = store.query_rows(client, *incidents.select_updates(db, uid))
    out = []
    for u in (dict(zip(names, r)) for r in rows):
        what = {"create": "opened", "update": "updated", "close": "closed (quiet)"}.get(u["activity"], u["activity"])
        out.append({"at": u["at"], "status": what, "actor": "scoring worker",
                    "note": f"{u['findings']} finding(s), {u['severity']}{'; asks for its page' if u['page'] else ''}"})
    names, rows = store.query_rows(client, *alerts.select_status_history(db, uid))
    out += [{"at": r["at"], "status": r["status"], "actor": r["actor"], "note": r["note"]}
            for r in (dict(zip(names, row)) for row in rows)]
    names, rows = store.query_rows(client, *deliveries.select_for_finding(db, uid))
    for d in (dict(zip(names, row)) for row in rows):
        answer = f"{d['status']} {d['response']}".strip()[:160]
        out.append({"at": d["at"], "status": "paged" if d["outcome"] == "delivered" else d["outcome"],
                    "actor": d["destination"], "note": f"attempt {d['attempt']}: {answer}" if d["attempt"] else answer})
    return sorted(out, key=lambda r: r["at"])
