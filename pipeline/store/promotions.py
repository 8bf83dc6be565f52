"""The model_promotions table: each signed model promotion, as a scoring worker first used it
(from ai.audit.model-promotions). Rows and SQL (pure)."""

from __future__ import annotations

from typing import Any

from aiaudit.pipeline.contract import parse_ts

COLUMNS = ("version", "sha256", "promoted_by", "promoted_at", "kid", "live_json", "first_scored_at", "scorer")


def message(live: dict[str, Any], live_json: str, *, first_scored_at: str, scorer: str) -> dict[str, Any]:
    """The topic message for a verified promotion (`live` parsed from `live_json`, kept verbatim so
    anyone can check its signature again)."""
    return {"version": live["manifest"]["version"], "sha256": live["manifest"]["sha256"],
            "promoted_by": live["promoted_by"], "promoted_at": live["promoted_at"], "kid": live["kid"],
            "live_json": live_json, "first_scored_at": first_scored_at, "scorer": scorer}


def row(obj: dict[str, Any]) -> list[Any]:
    """A model-promotions message -> table row. Raises KeyError/ValueError/TypeError on a bad shape."""
    for name in ("version", "sha256", "promoted_by", "kid", "live_json", "scorer"):
        if type(obj[name]) is not str:
            raise TypeError(f"{name} must be a string")
    return [obj["version"], obj["sha256"], obj["promoted_by"], parse_ts(obj["promoted_at"]), obj["kid"],
            obj["live_json"], parse_ts(obj["first_scored_at"]), obj["scorer"]]


def select_history(db: str) -> tuple[str, dict[str, Any]]:
    """One row per promotion (version, promoted_at), first use across workers, oldest first."""
    return (f"""
        SELECT version, any(sha256) AS sha256, any(promoted_by) AS promoted_by, promoted_at, any(kid) AS kid,
               any(live_json) AS live_json, min(first_scored_at) AS first_scored_at,
               groupUniqArray(scorer) AS scorers
        FROM {db}.model_promotions
        GROUP BY version, promoted_at
        ORDER BY promoted_at, version""", {})
