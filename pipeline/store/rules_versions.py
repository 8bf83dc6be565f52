"""The rules_versions table: each rule configuration a scoring worker scored with, as it first used
it (from ai.audit.rules): the version findings name, the effective thresholds (the rules file over
the defaults, the policy file's vendors), the rules switched off, and when. Rows and SQL (pure)."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson

from aiaudit.detectors.rules import RuleConfig
from aiaudit.pipeline.contract import parse_ts

COLUMNS = ("version", "sha256", "config_json", "off", "first_scored_at", "scorer")


def config_json(config: RuleConfig) -> bytes:
    """The effective configuration as it is kept and hashed (keys sorted, sets as sorted lists)."""
    doc = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    doc["off"] = sorted(config.off)
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def key(config: RuleConfig) -> str:
    """What tells one configuration from another: the SHA-256 of config_json."""
    return hashlib.sha256(config_json(config)).hexdigest()


def message(config: RuleConfig, *, first_scored_at: str, scorer: str) -> dict[str, Any]:
    """The topic message for the rule configuration a scorer scores a batch with."""
    text = config_json(config)
    return {"v": 1, "version": config.version, "sha256": hashlib.sha256(text).hexdigest(),
            "config_json": text.decode(), "off": sorted(config.off), "first_scored_at": first_scored_at,
            "scorer": scorer}


def row(obj: dict[str, Any]) -> list[Any]:
    """A rules message -> table row. Raises KeyError/ValueError/TypeError on a bad shape; a
    configuration whose text does not hash to the sha256 it names is refused."""
    if obj["v"] != 1:
        raise ValueError("not a rules message of format 1")
    for name in ("version", "sha256", "config_json", "scorer"):
        if type(obj[name]) is not str:
            raise TypeError(f"{name} must be a string")
    if hashlib.sha256(obj["config_json"].encode()).hexdigest() != obj["sha256"]:
        raise ValueError("config_json does not hash to sha256")
    off = obj["off"]
    if not isinstance(off, list) or not all(type(r) is str for r in off):
        raise TypeError("off must be a list of strings")
    return [obj["version"], obj["sha256"], obj["config_json"], off, parse_ts(obj["first_scored_at"]), obj["scorer"]]


def select_history(db: str) -> tuple[str, dict[str, Any]]:
    """One row per configuration (sha256), first use across workers, oldest first."""
    return (f"""
        SELECT any(version) AS version, sha256, any(config_json) AS config_json, any(off) AS off,
               min(first_scored_at) AS first_scored_at, groupUniqArray(scorer) AS scorers
        FROM {db}.rules_versions
        GROUP BY sha256
        ORDER BY first_scored_at, sha256""", {})
