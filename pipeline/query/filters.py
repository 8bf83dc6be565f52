"""Retrieval filters -> one parameterised ClickHouse query (pure; no user text in SQL).

Every value travels as a server-side parameter ({name:Type}); the only names formatted into
the SQL are the validated database name and column names from the fixed lists here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

DEFAULT_COLUMNS = (
    "ts", "actor_id", "on_behalf_of", "role", "provider", "model", "prompt_level",
    "decision", "policy_version", "route", "origin", "seq",
)
ALL_COLUMNS = (
    "origin", "seq", "leaf_hash", "prev", "kid", "ts", "src_topic", "src_partition", "src_offset",
    "event_id", "emitter_id", "emitter_seq", "actor_type", "actor_id", "on_behalf_of", "role", "route",
    "operation", "provider", "model", "prompt_level", "prompt_categories", "response_level", "policy_id",
    "policy_version", "decision", "retention_scope", "input_tokens", "output_tokens", "latency_us",
)
MAX_LIMIT = 1_000_000


@dataclass(frozen=True)
class Filters:
    """What an auditor samples by. `actor` matches the acting identity or the person an agent acted for."""

    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    provider: str | None = None
    model: str | None = None
    policy_version: str | None = None
    decision: str | None = None
    classification: str | None = None
    route: str | None = None
    origin: str | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")


def where_clause(f: Filters) -> tuple[str, dict[str, Any]]:
    conds: list[str] = []
    params: dict[str, Any] = {}
    if f.actor is not None:
        conds.append("(actor_id = {actor:String} OR on_behalf_of = {actor:String})")
        params["actor"] = f.actor
    if f.since is not None:
        conds.append("ts >= {since:DateTime64(6, 'UTC')}")
        params["since"] = f.since
    if f.until is not None:
        conds.append("ts < {until:DateTime64(6, 'UTC')}")
        params["until"] = f.until
    for column, attr in (("provider", "provider"), ("model", "model"), ("policy_version", "policy_version"),
                         ("decision", "decision"), ("prompt_level", "classification"), ("route", "route"),
                         ("origin", "origin")):
        value = getattr(f, attr)
        if value is not None:
            conds.append(f"{column} = {{{attr}:String}}")
            params[attr] = value
    return (" WHERE " + " AND ".join(conds)) if conds else "", params


def select_records(db: str, f: Filters, columns: tuple[str, ...] = DEFAULT_COLUMNS) -> tuple[str, dict[str, Any]]:
    """SQL and parameters for matching records, each (origin, seq) once, oldest first."""
    unknown = [c for c in columns if c not in ALL_COLUMNS and c not in ("payload", "sig")]
    if unknown:
        raise ValueError(f"unknown column(s): {', '.join(unknown)}")
    where, params = where_clause(f)
    params["limit"] = f.limit
    sql = (f"SELECT {', '.join(columns)} FROM {db}.evidence{where} "
           "ORDER BY ts, origin, seq LIMIT 1 BY origin, seq LIMIT {limit:UInt32}")
    return sql, params
