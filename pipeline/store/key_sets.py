"""The key_sets table: each emitter or analyst key set a chain worker checked with, as it first
used it (from ai.audit.key-sets, contract/key_sets.py). Rows and SQL (pure)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from aiaudit.pipeline.contract import parse_ts
from aiaudit.pipeline.contract.key_sets import KEY_SETS, kid_of

COLUMNS = ("key_set", "sha256", "kids", "jwks_json", "first_used_at", "worker")


def row(obj: dict[str, Any]) -> list[Any]:
    """A key-sets message -> table row. Raises KeyError/ValueError/TypeError on a bad shape; a set
    whose text does not hash to the sha256 it names is refused (it would be shown as what it is not)."""
    if obj["v"] != 1 or obj["key_set"] not in KEY_SETS:
        raise ValueError("not a key-set message of format 1 for emitters or analysts")
    for name in ("sha256", "jwks_json", "worker"):
        if type(obj[name]) is not str:
            raise TypeError(f"{name} must be a string")
    if hashlib.sha256(obj["jwks_json"].encode()).hexdigest() != obj["sha256"]:
        raise ValueError("jwks_json does not hash to sha256")
    kids = obj["kids"]
    if not isinstance(kids, list) or not all(type(k) is str for k in kids):
        raise TypeError("kids must be a list of strings")
    return [obj["key_set"], obj["sha256"], kids, obj["jwks_json"], parse_ts(obj["first_used_at"]), obj["worker"]]


def select_history(db: str, key_set: str | None = None) -> tuple[str, dict[str, Any]]:
    """One row per key set version (set, sha256), first use across workers, oldest first."""
    where = "WHERE key_set = {key_set:String}" if key_set else ""
    return (f"""
        SELECT key_set, sha256, any(kids) AS kids, any(jwks_json) AS jwks_json,
               min(first_used_at) AS first_used_at, groupUniqArray(worker) AS workers
        FROM {db}.key_sets {where}
        GROUP BY key_set, sha256
        ORDER BY key_set, first_used_at, sha256""", {"key_set": key_set} if key_set else {})


def changes(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each version of a set beside the one before it (history is one set's, oldest first): the kids
    added and removed, and the keys whose retirement (not_after) was set or moved."""
    out: list[dict[str, Any]] = []
    before: dict[str, dict[str, Any]] = {}
    for h in history:
        doc = orjson.loads(h["jwks_json"])
        now = {kid_of(k): k for k in doc.get("keys", []) if isinstance(k, dict)}
        retired = sorted(kid for kid, k in now.items() if kid in before and k.get("not_after") != before[kid].get("not_after"))
        out.append({**{k: v for k, v in h.items() if k != "jwks_json"},
                    "added": sorted(set(now) - set(before)), "removed": sorted(set(before) - set(now)),
                    "retired": retired,
                    "names": {kid: k.get("emitter") or k.get("analyst") or k.get("console") for kid, k in now.items()}})
        before = now
    return out
