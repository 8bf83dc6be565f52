"""The policies table: every policy bundle a gateway loaded (from ai.policies). Rows and SQL (pure)."""

from __future__ import annotations

from typing import Any

from aiaudit.pipeline.contract import parse_ts

COLUMNS = ("policy_id", "policy_version", "declared_version", "canonical_json", "source_yaml", "loaded_at",
           "gateway_id")


def row(obj: dict[str, Any]) -> list[Any]:
    """A policies-topic message (aiaudit.pipeline.gateway.policy.bundle_message) -> policies-table row."""
    return [obj["policy_id"], obj["policy_version"], obj["declared_version"], obj["canonical_json"], obj["source_yaml"],
            parse_ts(obj["loaded_at"]), obj["gateway_id"]]


def select_bundle(db: str, policy_version: str) -> tuple[str, dict[str, Any]]:
    """The bundle a policy_version names, as first loaded."""
    return (f"SELECT * FROM {db}.policies WHERE policy_version = {{v:String}} ORDER BY loaded_at LIMIT 1",
            {"v": policy_version})


def select_in_force(db: str) -> tuple[str, dict[str, Any]]:
    """Every policy version that decided a record or was published: first and last decision under
    it, how many, and when a gateway first loaded it (NULL when no bundle was ever published)."""
    return (f"""
        SELECT coalesce(v.policy_id, p.policy_id) AS policy_id,
               coalesce(v.policy_version, p.policy_version) AS policy_version, p.first_loaded AS first_loaded,
               v.first_decision AS first_decision, v.last_decision AS last_decision,
               coalesce(v.decisions, 0) AS decisions
        FROM (SELECT policy_id, policy_version, min(ts) AS first_decision, max(ts) AS last_decision,
                     count() AS decisions
              FROM (SELECT policy_id, policy_version, ts FROM {db}.evidence LIMIT 1 BY origin, seq)
              GROUP BY policy_id, policy_version) AS v
        FULL OUTER JOIN (SELECT policy_id, policy_version, min(loaded_at) AS first_loaded FROM {db}.policies
                         GROUP BY policy_id, policy_version) AS p
        ON v.policy_id = p.policy_id AND v.policy_version = p.policy_version
        ORDER BY first_decision
        SETTINGS join_use_nulls = 1""", {})
