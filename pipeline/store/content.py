"""The content table: content keys (and content, on `full` routes) apart from the chain, deleted
at expiry by the table's TTL (from ai.content). Rows (pure)."""

from __future__ import annotations

from typing import Any

from aiaudit.pipeline.contract import parse_ts

COLUMNS = ("event_id", "retention_scope", "expires_at", "key_b64", "prompt", "response")


def row(obj: dict[str, Any]) -> list[Any]:
    """A content-topic message (aiaudit.pipeline.gateway.event.content_message) -> content-table row."""
    return [obj["event_id"], obj["retention_scope"], parse_ts(obj["expires_at"]), obj["key_b64"], obj.get("prompt"),
            obj.get("response")]
