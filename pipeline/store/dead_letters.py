"""The dead_letters table: rejected input kept whole with its reason. Rows and SQL (pure)."""

from __future__ import annotations

import base64
from typing import Any

COLUMNS = ("src_topic", "src_partition", "src_offset", "reason", "detail", "message_b64")


def row(topic: str, partition: int, offset: int, reason: str, detail: str, message: bytes) -> list[Any]:
    return [topic, partition, offset, reason, detail, base64.b64encode(message).decode("ascii")]


def parse_src(header: str, fallback: tuple[str, int, int]) -> tuple[str, int, int]:
    """A dead letter's `topic/partition/offset` header; the message's own place when it is absent or bad."""
    parts = header.rsplit("/", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[1]), int(parts[2])
    return fallback


def count_by_reason(db: str) -> tuple[str, dict[str, Any]]:
    return f"SELECT reason, count() FROM {db}.dead_letters GROUP BY reason ORDER BY reason", {}
