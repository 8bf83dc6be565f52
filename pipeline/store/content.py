"""The content table: kept content, sealed under its subjects' keys and its record's
(contract/sealed.py), apart from the chain, deleted at expiry by the table's TTL (from ai.content).
Rows and SQL (pure). Rows kept before content was sealed hold key_b64, prompt and response in
plaintext; nothing writes such rows any more."""

from __future__ import annotations

from typing import Any

import orjson

from aiaudit.pipeline.contract import parse_ts
from aiaudit.pipeline.names import CONTENT_TABLE

COLUMNS = ("event_id", "retention_scope", "expires_at", "key_b64", "prompt", "response", "subjects", "key_ids",
           "sealed")


def row(obj: dict[str, Any]) -> list[Any]:
    """A content-topic message (aiaudit.pipeline.gateway.event.content_message) -> content-table row."""
    if "sealed" in obj:
        subjects, key_ids, sealed = obj["subjects"], obj["key_ids"], obj["sealed"]
        if not (isinstance(subjects, list) and all(isinstance(s, str) for s in subjects) and isinstance(key_ids, dict)
                and isinstance(sealed, str) and sealed):
            raise ValueError("sealed content needs subjects (strings), key_ids (an object) and sealed (text)")
        return [obj["event_id"], obj["retention_scope"], parse_ts(obj["expires_at"]), "", None, None, subjects,
                orjson.dumps(key_ids).decode(), sealed]
    return [obj["event_id"], obj["retention_scope"], parse_ts(obj["expires_at"]), obj["key_b64"], obj.get("prompt"),
            obj.get("response"), [], "", ""]


def select_content(db: str, event_id: str) -> tuple[str, dict[str, Any]]:
    """The content kept for one record (the newest row of it)."""
    return (f"SELECT retention_scope, expires_at, prompt, response, subjects, key_ids, sealed FROM {db}.{CONTENT_TABLE} "
            "WHERE event_id = {e:String} ORDER BY ingested_at DESC LIMIT 1", {"e": event_id})
