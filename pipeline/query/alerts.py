"""Alerts and their status (A.8.16 "detected and resolved"): list, acknowledge, resolve.

Status is append-only: each change is a new row (who, when, note), the current status is the
latest row, and the full history stays for the auditor. Changes travel as events (the
alert-status topic, stored by the sink), so analysts can act while the pipeline runs, also on
an embedded store that only the sink can hold. Values travel as query parameters.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer

from aiaudit.pipeline import store
from aiaudit.pipeline.contract.analysts import StatusSigner
from aiaudit.pipeline.errors import ConfigError, InfraError
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import alerts, deliveries

STATUSES = alerts.STATUSES
SEVERITIES = ("medium", "high", "critical")


def list_alerts(client: Client, settings: Settings, *, actor: str | None = None, severity: str | None = None,
                since: datetime | None = None, until: datetime | None = None, status: str | None = None,
                detector: str | None = None, limit: int = 100, group_by: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Alerts, newest first, each once, with its current status and who set it; with group_by,
    one row per group counting every matching alert (pipeline/store/alerts.py)."""
    sql, params = alerts.select_alerts(store.database(settings), actor=actor, severity=severity, since=since,
                                       until=until, status=status, detector=detector, limit=limit,
                                       group_by=group_by)
    names, rows = store.query_rows(client, sql, params)
    return [dict(zip(names, row)) for row in rows]


def set_status(settings: Settings, finding_uid: str, status: str, *, signer: StatusSigner, by: str | None = None,
               note: str = "", at: datetime | None = None, client: Client | None = None) -> dict[str, Any]:
    """Append a status change, signed by `signer` (the analyst's key, or a console's acting for `by`),
    by publishing it to the alert-status topic: the status chain worker chains it (a change no
    registered analyst key signed is refused there) and the sink stores it from the chain; it works
    while the sink holds an embedded store. With `client`, the alert must exist first. Returns the
    change as sent. Raises ConfigError for an unknown alert or status, SigningKeyError for a `by`
    the key cannot sign for; InfraError when the broker does not take it."""
    if status not in STATUSES:
        raise ConfigError(f"status must be one of {', '.join(STATUSES)}")
    if len(note) > 4096 or not 0 < len(finding_uid) <= 128 or (by is not None and not 0 < len(by.strip()) <= 256):
        raise ConfigError("a note of at most 4096 characters; who (--by) at most 256")
    if client is not None:
        _, found = store.query_rows(client, *alerts.count_alert(store.database(settings), finding_uid))
        if not found[0][0]:
            raise ConfigError(f"no alert {finding_uid}")
    message = signer.sign(alerts.status_message(finding_uid, status, by or signer.name, note,
                                                at or datetime.now(timezone.utc)), by=by)
    producer = Producer(kafka_config.producer(settings))
    producer.produce(settings.kafka.alert_status_topic, key=finding_uid.encode(), value=orjson.dumps(message))
    if producer.flush(15):
        raise InfraError(f"the broker at {settings.kafka.bootstrap_servers} did not take the status change; "
                         "nothing was changed")
    return message


def status_history(client: Client, settings: Settings, finding_uid: str) -> list[dict[str, Any]]:
    """The alert's history in time order: its raising (status "raised", by its model or rules, with
    why), each delivery outcome (status "delivered", "failed", ...; actor: the destination; note:
    the attempt and the receiver's answer) and each status change. Raises ConfigError for an
    unknown alert."""
    db = store.database(settings)
    _, raised = store.query_rows(client, *alerts.select_raised(db, finding_uid))
    if not raised:
        raise ConfigError(f"no alert {finding_uid}")
    at, model, severity, why = raised[0]
    first = {"status": "raised", "actor": f"rules {model}" if model.startswith("rules-") else f"model {model}", "note": f"{severity}: {why}", "at": at}
    names, rows = store.query_rows(client, *alerts.select_status_history(db, finding_uid))
    changes = [dict(zip(names, row)) for row in rows]
    names, rows = store.query_rows(client, *deliveries.select_for_finding(db, finding_uid))
    sent = []
    for d in (dict(zip(names, row)) for row in rows):
        try:  # the stored detail is cut at 2,000 characters: a cut one is read as no detail
            detail = orjson.loads(d["detail"] or "{}")
            detail = detail if isinstance(detail, dict) else {}
        except orjson.JSONDecodeError:
            detail = {}
        doubt = " (resent in doubt: the receiver drops it by its delivery id)" if detail.get("in_doubt") else ""
        if isinstance(detail.get("redrive_by"), str):
            doubt += f" (re-driven by {detail['redrive_by'][:128]})"
        answer = f"{d['status']} {d['response']}".strip()[:160]
        sent.append({"status": d["outcome"], "actor": d["destination"], "at": d["at"],
                     "note": f"attempt {d['attempt']}: {answer}{doubt}" if d["attempt"] else answer})
    return [first, *sorted(changes + sent, key=lambda r: r["at"])]
