"""The policies table: every policy bundle a gateway loaded (from ai.policies). Rows and SQL (pure)."""

from __future__ import annotations

from typing import Any

from pipeline.contract import parse_ts

COLUMNS = ("policy_id", "policy_version", "declared_version", "canonical_json", "source_yaml", "loaded_at",
           "gateway_id")


def row(obj: dict[str, Any]) -> list[Any]:
    """A policies-topic message (pipeline.gateway.policy.bundle_message) -> policies-table row."""
    return [obj["policy_id"], obj["policy_version"], obj["declared_version"], obj["canonical_json"], obj["source_yaml"],
            parse_ts(obj["loaded_at"]), obj["gateway_id"]]


def select_bundle(db: str, policy_version: str) -> tuple[str, dict[str, Any]]:
    """The bundle a policy_version names, as first loaded."""
    return (f"SELECT * FROM {db}.policies WHERE policy_version = {{v:String}} ORDER BY loaded_at LIMIT 1",
            {"v": policy_version})
