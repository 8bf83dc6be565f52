"""A record's kept content, opened with the keys it is sealed under, or the erasure that ended it."""

from __future__ import annotations

from typing import Any

import orjson

from aiaudit.pipeline import store
from aiaudit.pipeline.contract.subject_keys import SubjectKeys
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import content, erasures


def content_of(settings: Settings, keys: SubjectKeys, event_id: str) -> dict[str, Any]:
    """{"event_id", "retention_scope", "expires_at", "prompt", "response", "state"}: state `open`, or
    `erased` with who erased which key when (the erasure records), or `kept in plaintext` for
    content kept before it was sealed. Raises ConfigError when nothing was kept for the record."""
    client = store.open_reads(settings, "content")
    db = store.database(settings)
    try:
        names, rows = store.query_rows(client, *content.select_content(db, event_id))
        if not rows:
            raise ConfigError(f"no content kept for event {event_id} (its route keeps none, it expired, or no such "
                              "event)")
        row = dict(zip(names, rows[0]))
        out = {"event_id": event_id, "retention_scope": row["retention_scope"], "expires_at": row["expires_at"]}
        if not row["sealed"]:
            return {**out, "prompt": row["prompt"], "response": row["response"],
                    "state": "kept in plaintext (before content was sealed)"}
        subjects = list(row["subjects"])
        opened = keys.open(event_id, subjects, orjson.loads(row["key_ids"] or "{}"), row["sealed"])
        if isinstance(opened, dict):
            return {**out, "prompt": opened.get("prompt"), "response": opened.get("response"), "state": "open"}
        found: list[list[Any]] = []
        for name in opened:
            sql = erasures.select_erasures(db, event_id=event_id) if name == "record" else \
                erasures.select_erasures(db, subject=name)
            found += store.query_rows(client, *sql)[1]
        said = "; ".join(f"{at} {action} by {by}: {reason}" for at, action, _, _, reason, _, by, *_ in found
                         if action in ("erase", "expire"))
        return {**out, "prompt": None, "response": None,
                "state": f"erased ({', '.join(opened)} key gone){': ' + said if said else ''}"}
    finally:
        client.close()
