"""Retrieval filters over the evidence table -> a parameterised WHERE clause (pure; no user text in SQL).

Every value travels as a server-side parameter ({name:Type}); the only names formatted into
SQL anywhere in pipeline/store are the validated database name and column names from the
fixed lists of the table modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_LIMIT = 1_000_000
RECORD_FILTERS = ("actor", "provider", "model", "policy_version", "decision", "classification", "route", "event_id")


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
    event_id: str | None = None  # one request: a gateway answer's X-Request-Id
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

    @property
    def selects_records(self) -> bool:
        """True when the filter picks records out of their chains by what they say (not by chain or time)."""
        return any(getattr(self, name) is not None for name in RECORD_FILTERS)


def where_clause(f: Filters) -> tuple[str, dict[str, Any]]:
    """` WHERE ...` (or "") and its parameters for the evidence table's typed columns."""
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
    if f.policy_version is not None:
        # The full version, or the declared version alone (every bundle published under it:
        # "2026.11.0" matches "2026.11.0+sha256.<hash>"), or a prefix of a full one.
        conds.append("(policy_version = {policy_version:String} OR startsWith(policy_version, {pv_prefix:String}))")
        params["policy_version"] = f.policy_version
        params["pv_prefix"] = f.policy_version if "+" in f.policy_version else f.policy_version + "+"
    for column, attr in (("decision", "decision"), ("prompt_level", "classification"), ("origin", "origin"),
                         ("event_id", "event_id")):
        value = getattr(f, attr)
        if value is not None:
            conds.append(f"{column} = {{{attr}:String}}")
            params[attr] = value
    # Vendor, model and route names are identifiers: `--vendor OpenAI` finds openai.
    for column, attr in (("provider", "provider"), ("model", "model"), ("route", "route")):
        value = getattr(f, attr)
        if value is not None:
            conds.append(f"lower({column}) = lower({{{attr}:String}})")
            params[attr] = value
    return (" WHERE " + " AND ".join(conds)) if conds else "", params
