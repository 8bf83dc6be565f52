"""What each console page shows, read through the store (the I/O edge of the console's pages).

Every function takes the console's store client (the sink's store API on an embedded store) and
returns plain values for a template, plus the rows shown, from which the page view's access record
is digested. Nothing here writes; status changes go through query/incidents.py.
"""

from __future__ import annotations

import base64
import io
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline import store
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.export.format import ExportFile, add_line
from aiaudit.pipeline.query.api import policies_in_force, policy_bundle, policy_versions
from aiaudit.pipeline.query.export import export_records
from aiaudit.pipeline.query.incidents import incident_history, list_incidents, show_incident
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import access, checkpoints, dead_letters, evidence
from aiaudit.pipeline.store.filters import MAX_LIMIT, Filters
from aiaudit.pipeline.store.policies import changed_entries, diff_lines, select_decided
from aiaudit.pipeline.verify.run import verify_export
from aiaudit.pipeline.verify.trust import Trust

PAGE_SIZE = 50
MAX_CURSOR = 512
LIST_COLUMNS = ("ts", "actor_id", "on_behalf_of", "role", "provider", "model", "prompt_level", "decision",
                "policy_version", "route", "event_id", "origin", "seq")


@dataclass
class Shown:
    """What a page showed: its values for the template and the rows its access record digests."""

    values: dict[str, Any]
    rows: list[list[Any]]


def _dicts(names: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(names, row)) for row in rows]


def cursor_text(row: dict[str, Any]) -> str:
    """The cursor of the page after `row` (opaque to the browser: base64url JSON)."""
    ts = row["ts"] if row["ts"].tzinfo else row["ts"].replace(tzinfo=timezone.utc)
    doc = [ts.isoformat(), str(row["origin"]), int(row["seq"])]
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def parse_cursor(text: str | None) -> tuple[datetime, str, int] | None:
    """(ts, origin, seq) of a cursor, None for none. Raises ConfigError for one not made here."""
    if not text:
        return None
    if len(text) > MAX_CURSOR:
        raise ConfigError("the page cursor is too long")
    try:
        doc = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        ts, origin, seq = doc
        when = datetime.fromisoformat(ts)
        if type(origin) is not str or type(seq) is not int or seq < 0 or when.tzinfo is None or len(origin) > 256:
            raise ValueError("shape")
    except (ValueError, TypeError) as exc:
        raise ConfigError("the page cursor is not one this console made") from exc
    return when, origin, seq


class LagCache:
    """The pipeline's lag per stage from the broker, asked at most every `ttl_s` (a page must not
    wait for the broker on every view)."""

    def __init__(self, settings: Settings, ttl_s: float = 15.0) -> None:
        self.settings, self.ttl_s = settings, ttl_s
        self._at, self._value = 0.0, {}  # type: float, dict[str, Any]

    def get(self) -> dict[str, Any]:
        if time.monotonic() - self._at > self.ttl_s:
            from aiaudit.pipeline.ops.progress import pipeline_lag

            try:
                lag = pipeline_lag(self.settings)
                self._value = {"chain": lag.chain, "evidence": lag.evidence, "sink": lag.sink, "error": None}
            except Exception as exc:  # noqa: BLE001  # a broker away is shown, never a failed page
                self._value = {"error": f"the broker did not answer: {type(exc).__name__}"}
            self._at = time.monotonic()
        return self._value


def overview(client: Client, settings: Settings, lag: dict[str, Any]) -> Shown:
    db = store.database(settings)
    names, rows = store.query_rows(client, *checkpoints.select_overview(db))
    chains = _dicts(names, rows)
    cnames, crows = store.query_rows(client, *checkpoints.select_newest_cosignatures(db))
    cosigned: dict[str, list[dict[str, Any]]] = {}
    for c in _dicts(cnames, crows):
        cosigned.setdefault(str(c["origin"]), []).append(c)
    for chain in chains:
        chain["cosignatures"] = cosigned.get(str(chain["origin"]), [])
    _, dead = store.query_rows(client, *dead_letters.count_by_reason(db))
    incidents = list_incidents(client, settings, status="open", limit=11)
    shown = [[c["origin"], c["newest_size"], c["signed_size"], c["newest_signed_at"]] for c in chains]
    shown += [list(r) for r in crows] + [list(r) for r in dead] + [[i["uid"]] for i in incidents]
    return Shown({"chains": chains, "dead_letters": [{"reason": r, "count": n} for r, n in dead],
                  "incidents": incidents[:10], "more_incidents": len(incidents) > 10, "lag": lag}, shown)


def records(client: Client, settings: Settings, filters: Filters, before: tuple[datetime, str, int] | None) -> Shown:
    """A page of records, newest first, and the cursor of the next page (None on the last)."""
    db = store.database(settings)
    ask = 2 * (PAGE_SIZE + 1)
    while True:  # rows stored twice (a redelivery) come twice: ask for more until the page is whole
        chosen = Filters(**{**filters.__dict__, "limit": ask})
        names, rows = store.query_rows(client, *evidence.select_page(db, chosen, before, LIST_COLUMNS))
        seen: set[tuple[Any, Any]] = set()
        kept = []
        for row in rows:
            key = (row[names.index("origin")], row[names.index("seq")])
            if key not in seen:
                seen.add(key)
                kept.append(row)
        if len(kept) > PAGE_SIZE or len(rows) < ask or ask >= MAX_LIMIT:
            break
        ask = min(ask * 4, MAX_LIMIT)
    found = _dicts(names, kept)
    page = found[:PAGE_SIZE]
    more = cursor_text(page[-1]) if len(found) > PAGE_SIZE else None
    return Shown({"records": page, "next": more}, [list(r) for r in kept[:PAGE_SIZE]])


def record(client: Client, settings: Settings, origin: str, seq: int, trust: Trust,
           operator: Ed25519PrivateKey | None) -> Shown:
    """One record: its columns, its decoded payload, the policy bundle behind it and, with the
    operator key, its proof bundle (a sealed one-record export) checked here as `aiaudit verify
    --export` checks it offline. Raises ConfigError when there is no such record."""
    db = store.database(settings)
    names, rows = store.query_rows(client, *evidence.select_record(db, origin, seq))
    if not rows:
        raise ConfigError(f"no record {origin}#{seq}")
    found = _dicts(names, rows)
    row = found[0]
    payload = row.pop("payload")
    try:
        decoded: Any = orjson.loads(payload)
        pretty = json.dumps(decoded, indent=2, ensure_ascii=False)
    except orjson.JSONDecodeError:
        decoded, pretty = None, bytes(payload).decode("utf-8", "replace")
    event = decoded.get("event", {}) if isinstance(decoded, dict) else {}
    bundle_text, report_text, ok, proven = None, None, None, 0
    if operator is not None:
        out = io.StringIO()
        chosen = Filters(origin=origin, event_id=str(row["event_id"]) or None, limit=1)
        export_records(client, settings, chosen, out, now=datetime.now(timezone.utc), operator=operator)
        bundle_text = out.getvalue()
        file = ExportFile()
        for line in bundle_text.splitlines():
            if line.strip():
                try:
                    add_line(file, line.encode())
                except ValueError as exc:
                    file.problems.append((0, str(exc)[:300]))
        checked = verify_export(file, trust)
        report_text, ok, proven = checked.text(), checked.ok, checked.proven
    pv = str(row.get("policy_version") or "")
    bundle = policy_bundle(settings, pv, client) if pv else None
    policy_problems = _document(bundle)[1] if bundle is not None else []
    return Shown({"record": row, "copies": len(found), "payload": pretty,
                  "emitter_kid": (event.get("emitter_signature") or {}).get("kid") if isinstance(event, dict) else None,
                  "bundle": bundle_text, "verify_text": report_text, "verified": ok, "proven": proven,
                  "policy": bundle, "policy_problems": policy_problems}, [list(r) for r in rows])


def incidents(client: Client, settings: Settings, status: str | None, severity: str | None) -> Shown:
    found = list_incidents(client, settings, status=status, severity=severity, limit=PAGE_SIZE + 1)
    return Shown({"incidents": found[:PAGE_SIZE], "more": len(found) > PAGE_SIZE},
                 [[i["uid"], i["status"], i["severity"]] for i in found[:PAGE_SIZE]])


def alerts(client: Client, settings: Settings, *, status: str | None, severity: str | None, actor: str | None,
           group_by: str | None) -> Shown:
    """Alerts (raw findings), newest first; with group_by (actor, detectors, severity, status, model),
    one row per group counting every match."""
    from aiaudit.pipeline.query.alerts import list_alerts

    found = list_alerts(client, settings, status=status, severity=severity, actor=actor,
                        group_by=(group_by,) if group_by else (), limit=PAGE_SIZE + 1)
    return Shown({"alerts": found[:PAGE_SIZE], "more": len(found) > PAGE_SIZE},
                 [list(a.values())[:6] for a in found[:PAGE_SIZE]])


def incident(client: Client, settings: Settings, uid: str) -> Shown:
    found = show_incident(client, settings, uid)
    history = incident_history(client, settings, uid)
    return Shown({"incident": found, "history": history},
                 [[found["uid"], found["status"]]] + [[h["at"], h["status"], h["actor"]] for h in history])


ENTRY_LEVELS = 3  # a policy's changes named down to a route's setting (routes.default.deny changed)


def _document(bundle: dict[str, Any]) -> tuple[Any, list[str]]:
    """A stored bundle's policy document and why it is not the version it is stored as (a store
    writer can change rows: a bundle that does not hash to its version is shown as such, never
    compared as if it were that version)."""
    from aiaudit.pipeline.gateway.policy import bundle_problems

    version, canonical = str(bundle["policy_version"]), str(bundle["canonical_json"] or "")
    problems = bundle_problems(version, canonical, str(bundle["source_yaml"] or ""))
    try:
        return orjson.loads(canonical), problems
    except orjson.JSONDecodeError:
        return None, problems or ["its canonical JSON does not parse"]


def policies(client: Client, settings: Settings) -> Shown:
    """Each policy version that decided or was published, with what changed from the version of the
    same policy published before it."""
    found = policies_in_force(client, settings)
    previous: dict[str, Any] = {}
    changes: dict[str, list[str]] = {}
    for bundle in policy_versions(client, settings):
        doc, problems = _document(bundle)
        pid, version = str(bundle["policy_id"]), str(bundle["policy_version"])
        if problems:
            changes[version] = ["NOT this version: " + "; ".join(problems)]
            continue
        changes[version] = changed_entries(previous[pid], doc, ENTRY_LEVELS) if pid in previous else ["first version published"]
        previous[pid] = doc
    rows = [{**p, "changed": changes.get(str(p["policy_version"]), [])} for p in found]
    return Shown({"policies": rows}, [list(p.values()) for p in found])


def policy(client: Client, settings: Settings, version: str, against: str | None) -> Shown:
    """One published policy version: its bundle (checked to hash to its version), when it decided,
    and what changed from the version published before it (or from `against`, another version of
    the same policy). Raises ConfigError when no bundle was published under `version`."""
    versions = policy_versions(client, settings)
    by_version = {str(b["policy_version"]): b for b in versions}
    bundle = by_version.get(version)
    if bundle is None:
        raise ConfigError(f"no policy bundle {version} was published")
    pid = str(bundle["policy_id"])
    same = [b for b in versions if str(b["policy_id"]) == pid]
    if against is None:
        earlier = [b for b in same if b["first_loaded"] < bundle["first_loaded"]]
        base = earlier[-1] if earlier else None
    else:
        base = by_version.get(against)
        if base is None or str(base["policy_id"]) != pid:
            raise ConfigError(f"no published version {against} of policy {pid} to compare with")
    doc, problems = _document(bundle)
    compared: dict[str, Any] | None = None
    if base is not None:
        base_doc, base_problems = _document(base)
        compared = {"version": base["policy_version"], "problems": base_problems, "entries": [], "diff": []}
        if not problems and not base_problems:
            compared["entries"] = changed_entries(base_doc, doc, ENTRY_LEVELS)
            compared["diff"] = diff_lines(base_doc, doc, str(base["policy_version"]), version)
    names, rows = store.query_rows(client, *select_decided(store.database(settings), version))
    decided = dict(zip(names, rows[0])) if rows and rows[0][2] else None
    return Shown({"bundle": bundle, "problems": problems, "compared": compared, "decided": decided,
                  "versions": [str(b["policy_version"]) for b in same]},
                 [[b["policy_id"], b["policy_version"], b["first_loaded"]] for b in same])


def access_records(client: Client, settings: Settings, principal: str | None) -> Shown:
    names, rows = store.query_rows(client, *access.select_access(store.database(settings), principal=principal,
                                                                 limit=PAGE_SIZE))
    return Shown({"access": _dicts(names, rows)}, [list(r) for r in rows])


def trust_summary(trust: Trust) -> dict[str, Any]:
    """What the console's checks trust (no store read)."""
    return {"record_keys": trust.keyring.kids(),
            "emitter_keys": trust.keyring.emitters is not None, "analyst_keys": trust.keyring.analysts is not None,
            "checkpoint_keys": [base64.b64encode(k).decode() for k in trust.checkpoint_keys],
            "operator_keys": [base64.b64encode(k).decode() for k in trust.operator_keys],
            "witnesses": [{"name": v.name, "vkey": v.vkey(), "url": url} for v, url in trust.witnesses],
            "min_cosignatures": trust.min_cosignatures}

