"""The rules file: an operator's thresholds, versioned by hash, strict about its shape, hot
reloaded by the scorer, and a refused file never replaces the one in force."""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import datetime, timedelta, timezone

import pytest

from aiaudit.detectors.features import IdentityState, event_time, observe
from aiaudit.detectors.rules import RULES_VERSION, RuleConfig, check
from aiaudit.detectors.rules_file import RulesFileError, parse_rules_file
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import ScoreSettings, Settings
from tests.unit.detectors.test_rules import ev

GOOD = b"""format: 1
settings:
  burst_per_minute: 20
  learning_days: 14
  unlisted_max_level: internal
disabled: [odd_hours_run]
"""


def test_a_rules_file_sets_thresholds_switches_rules_off_and_is_versioned_by_its_bytes():
    base = RuleConfig(vendor_max_level={"openai": "confidential"})
    config = parse_rules_file(GOOD, base)
    assert (config.burst_per_minute, config.learning_days, config.unlisted_max_level) == (20, 14.0, "internal")
    assert config.vendor_max_level == {"openai": "confidential"}  # the vendors stay the policy file's
    assert config.off == {"odd_hours_run"} and config.dormant_days == RuleConfig().dormant_days
    assert config.version == f"{RULES_VERSION}+{hashlib.sha256(GOOD).hexdigest()[:12]}"
    assert parse_rules_file(GOOD + b"\n# a comment\n").version != config.version  # any change is a new version
    assert parse_rules_file(b"format: 1\n").version.startswith(RULES_VERSION)  # nothing set: the defaults

    # A rule switched off raises nothing; the thresholds are the ones checks use.
    t0 = datetime(2026, 11, 16, 10, 0, tzinfo=timezone.utc)
    state = IdentityState()
    for i in range(14):
        observe(ev(t0 + timedelta(seconds=3 * i)), state)
    burst = ev(t0 + timedelta(seconds=45))
    assert [h.rule for h in check(burst, state, RuleConfig(), event_time(burst))] == ["request_burst"]
    assert check(burst, state, config, event_time(burst)) == []  # 15 in a minute: under this file's 20
    off = parse_rules_file(b"format: 1\ndisabled: [request_burst]\n")
    assert check(burst, state, off, event_time(burst)) == []


@pytest.mark.parametrize("raw, why", [
    (b"format: 1\noff: [odd_hours_run]\n", "unknown key"),  # YAML reads `off` as false: named, not ignored
    (b"format: 2\n", "format must be 1"),
    (b"settings: {}\n", "format must be 1"),
    (b"- format\n", "not a mapping"),
    (b"format: 1\nsettings: [1, 2]\n", "settings must be a mapping"),
    (b"format: 1\nsettings: {burst_per_minut: 20}\n", "no threshold 'burst_per_minut'"),
    (b"format: 1\nsettings: {vendor_max_level: {openai: restricted}}\n", "no threshold 'vendor_max_level'"),
    (b"format: 1\nsettings: {version: mine}\n", "no threshold 'version'"),
    (b"format: 1\nsettings: {burst_per_minute: 2.5}\n", "a whole number"),
    (b"format: 1\nsettings: {burst_per_minute: true}\n", "a whole number"),
    (b"format: 1\nsettings: {burst_per_minute: '20'}\n", "a whole number"),
    (b"format: 1\nsettings: {learning_days: -1}\n", "above 0"),
    (b"format: 1\nsettings: {learning_days: 0}\n", "above 0"),
    (b"format: 1\nsettings: {learning_days: .nan}\n", "above 0"),
    (b"format: 1\nsettings: {learning_days: 1.0e+400}\n", "above 0"),
    (b"format: 1\nsettings: {unlisted_max_level: secret}\n", "one of public"),
    (b"format: 1\ndisabled: odd_hours_run\n", "a list of rule names"),
    (b"format: 1\ndisabled: [no_such_rule]\n", "no rule no_such_rule"),
    (b"format: 1\nsettings: {a: [\n", "not YAML"),
    (b"format: 1\n" + b"#" * 70_000, "larger than"),
    (b"format: 1\n!!python/object/apply:os.system ['true']: 1\n", "not YAML"),
])
def test_a_hostile_or_mistaken_rules_file_is_refused_naming_what_is_wrong(raw, why):
    with pytest.raises(RulesFileError, match=why):
        parse_rules_file(raw)


def test_the_scorer_reloads_a_changed_rules_file_and_keeps_the_one_in_force_when_the_new_one_is_refused(tmp_path, caplog):
    from aiaudit.pipeline.score.models import LiveRules

    path = tmp_path / "rules.yaml"
    path.write_bytes(GOOD)
    settings = Settings(score=ScoreSettings(rules_file=path))
    with caplog.at_level(logging.INFO, logger="aiaudit.score"):
        live = LiveRules(settings, check_every_s=0)
    first = live()
    assert first.burst_per_minute == 20 and "switched off" in caplog.text and "odd_hours_run" in caplog.text
    path.write_bytes(GOOD.replace(b"20", b"30"))
    os.utime(path, ns=(1, 1))  # a new stamp whatever the clock's resolution
    assert live().burst_per_minute == 30 and live().version != first.version
    path.write_bytes(b"format: 1\nsettings: {burst_per_minute: lots}\n")
    with caplog.at_level(logging.ERROR, logger="aiaudit.score"):
        assert live().burst_per_minute == 30  # refused: the one in force stays
    assert "is not used" in caplog.text
    # A scorer does not start on a bad file.
    with pytest.raises(ConfigError, match="RULES_FILE"):
        LiveRules(settings)
    # Without a rules file: the defaults, no reload.
    assert LiveRules(Settings())().version == RULES_VERSION


def test_every_finding_names_the_rules_version_it_was_raised_under():
    from aiaudit.detectors.model import RulesOnly
    from aiaudit.pipeline.keys import Ed25519Signer
    from aiaudit.pipeline.score.step import score_records
    from tests.unit.helpers import build_chain

    config = parse_rules_file(b"format: 1\nsettings: {burst_per_minute: 2, burst_over_usual: 1.0}\n")
    scored = score_records(build_chain(200, Ed25519Signer.generate()), {}, RulesOnly(), detected_at_ms=1, rules=config)
    findings = [s.finding for s in scored if s.finding]
    assert findings  # 2 a minute is a burst under this file
    assert all(f["finding_info"]["analytic"]["version"] == config.version for f in findings)
    assert all(d["version"] == config.version for f in findings for d in f["unmapped"]["detections"])
