"""The policies table: every policy bundle a gateway loaded (from ai.policies). Rows, SQL, and
what changed between two bundles (pure)."""

from __future__ import annotations

import difflib
import json
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


def select_versions(db: str, policy_id: str | None = None, limit: int = 1000) -> tuple[str, dict[str, Any]]:
    """Each published version (of one policy, or of all) as first loaded, oldest first: its
    canonical JSON, YAML, and the gateway that loaded it first."""
    where = "WHERE policy_id = {p:String}" if policy_id is not None else ""
    return (f"""
        SELECT policy_id, policy_version, min(loaded_at) AS first_loaded,
               argMin(gateway_id, loaded_at) AS gateway_id, argMin(canonical_json, loaded_at) AS canonical_json,
               argMin(source_yaml, loaded_at) AS source_yaml
        FROM {db}.policies {where}
        GROUP BY policy_id, policy_version
        ORDER BY first_loaded, policy_version
        LIMIT {int(limit)}""", {"p": policy_id} if policy_id is not None else {})


def select_decided(db: str, policy_version: str) -> tuple[str, dict[str, Any]]:
    """The first and last decision under one policy version, and how many (each record once)."""
    return (f"""
        SELECT min(ts) AS first_decision, max(ts) AS last_decision, count() AS decisions
        FROM (SELECT ts FROM {db}.evidence WHERE policy_version = {{v:String}} LIMIT 1 BY origin, seq)""",
            {"v": policy_version})


def changed_entries(a: Any, b: Any, levels: int = 2, path: str = "") -> list[str]:
    """What differs between two policy documents, as `section.entry added|removed|changed` lines,
    `levels` deep (2, sections and their entries, is what evidence reports state: a report sealed
    with these lines is checked against them again, so their form does not change)."""
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict) and levels > 0:
        lines = [f"{path}{k} added" for k in sorted(set(b) - set(a))]
        lines += [f"{path}{k} removed" for k in sorted(set(a) - set(b))]
        for k in sorted(set(a) & set(b)):
            lines += changed_entries(a[k], b[k], levels - 1, f"{path}{k}.")
        return lines
    return [f"{path.rstrip('.') or '(document)'} changed"]


MAX_DIFF_LINES = 2000


def diff_lines(before: Any, after: Any, before_name: str, after_name: str) -> list[str]:
    """A unified diff of two policy documents as sorted, indented JSON (the canonical form's content,
    one setting a line), three lines of context; at most MAX_DIFF_LINES lines, then a note."""
    def text(doc: Any) -> list[str]:
        return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).splitlines()

    lines = list(difflib.unified_diff(text(before), text(after), before_name, after_name, lineterm=""))
    if len(lines) > MAX_DIFF_LINES:
        return lines[:MAX_DIFF_LINES] + [f"... {len(lines) - MAX_DIFF_LINES} more lines"]
    return lines


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
