"""The rules file (pure): the rule detectors' thresholds as an operator edits them, in YAML.

    format: 1
    settings:              # any threshold of RuleConfig; the others keep their defaults
      burst_per_minute: 20
      learning_days: 14
    disabled: [odd_hours_run]   # rules switched off (the worker logs them at start and reload)

The file is versioned by its bytes like a policy bundle: `rules-3+<first 12 hex of its
SHA-256>`, and every finding names the version it was raised under. It is strict: an unknown
key, a rule that does not exist, a threshold of the wrong type or not above zero, a file over
64 KiB, or YAML that is not a mapping is refused with what is wrong, and a refused file never
replaces the one in force.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

import yaml

from aiaudit.detectors.features import LEVELS
from aiaudit.detectors.rules import RULE_NAMES, RULES_VERSION, RuleConfig

MAX_BYTES = 65_536
FORMAT = 1
NOT_SETTINGS = ("vendor_max_level", "version", "off")  # from the policy file, or made here


class RulesFileError(ValueError):
    """The rules file is not one this scorer can use; the message says why."""


def _settings() -> dict[str, type]:
    return {f.name: type(f.default) for f in dataclasses.fields(RuleConfig) if f.name not in NOT_SETTINGS}


def rules_version(raw: bytes) -> str:
    return f"{RULES_VERSION}+{hashlib.sha256(raw).hexdigest()[:12]}"


def parse_rules_file(raw: bytes, base: RuleConfig | None = None) -> RuleConfig:
    """`base` (default RuleConfig(): the vendors come from the policy file) with the file's settings,
    switched-off rules and version. Raises RulesFileError naming the problem."""
    if len(raw) > MAX_BYTES:
        raise RulesFileError(f"larger than {MAX_BYTES:,} bytes")
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise RulesFileError(f"not YAML: {str(exc).splitlines()[0][:200]}") from exc
    if not isinstance(doc, dict):
        raise RulesFileError("not a mapping (format, settings, disabled)")
    unknown = sorted(str(k)[:40] for k in doc if k not in ("format", "settings", "disabled"))
    if unknown:
        raise RulesFileError(f"unknown key(s) {', '.join(unknown)}: a rules file has format, settings and disabled")
    if doc.get("format") != FORMAT:
        raise RulesFileError(f"format must be {FORMAT}, not {str(doc.get('format'))[:20]!r}")
    settings = doc.get("settings") or {}
    if not isinstance(settings, dict):
        raise RulesFileError("settings must be a mapping of threshold: value")
    known = _settings()
    values: dict[str, Any] = {}
    for key, value in settings.items():
        want = known.get(key) if isinstance(key, str) else None
        if want is None:
            raise RulesFileError(f"settings: no threshold {str(key)[:60]!r} (known: {', '.join(sorted(known))})")
        if want is str:  # unlisted_max_level
            if value not in LEVELS:
                raise RulesFileError(f"settings.{key}: one of {', '.join(LEVELS)}")
        elif type(value) is bool or not isinstance(value, (int, float)) or (want is int and not isinstance(value, int)):
            raise RulesFileError(f"settings.{key}: {'a whole number' if want is int else 'a number'}, not "
                                 f"{str(value)[:40]!r}")
        elif not math.isfinite(value) or value <= 0 or value > 1e9:
            raise RulesFileError(f"settings.{key}: above 0 and at most 1e9, not {value!r}")
        values[key] = float(value) if want is float else value
    off = doc.get("disabled") or []
    if not isinstance(off, list) or not all(isinstance(r, str) for r in off):
        raise RulesFileError("disabled must be a list of rule names")
    unknown_rules = sorted({r[:60] for r in off} - set(RULE_NAMES))
    if unknown_rules:
        raise RulesFileError(f"disabled: no rule {', '.join(unknown_rules)} (rules: {', '.join(RULE_NAMES)})")
    return dataclasses.replace(base or RuleConfig(), **values, off=frozenset(off), version=rules_version(raw))
