"""Key-set and rule-configuration records (pure): the messages chain and scoring workers write, the
rows the sink makes of them, hostile ones refused, and the changes between versions of a set."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import orjson
import pytest

from aiaudit.detectors.rules import RULES_VERSION, RuleConfig
from aiaudit.pipeline import names
from aiaudit.pipeline.contract import key_sets as contract_key_sets
from aiaudit.pipeline.keys import Ed25519Signer, thumbprint
from aiaudit.pipeline.settings import KafkaSettings
from aiaudit.pipeline.sink.rows import rows_of
from aiaudit.pipeline.store import key_sets, rules_versions
from tests.unit.sink.test_rows import chained

K = KafkaSettings()
AT = "2026-12-04T08:00:00.250000Z"


def _jwk(name: str, **extra: str) -> dict[str, str]:
    public = Ed25519Signer.generate().jwk()
    return {"kty": "OKP", "crv": "Ed25519", "x": public["x"], "emitter": name, **extra}


def test_a_key_set_message_names_its_keys_by_thumbprint_and_hashes_its_canonical_text():
    a, b = _jwk("billing"), _jwk("support", kid="not-its-thumbprint")
    doc = {"keys": [b, a]}
    msg = contract_key_sets.message("emitters", doc, first_used_at=AT, worker="aiaudit-chain/h:1")
    assert msg["kids"] == sorted([thumbprint(a), thumbprint(b)])  # never the kid a key claims
    assert msg["sha256"] == contract_key_sets.digest({"keys": [b, a]})
    assert msg["jwks_json"].encode() == contract_key_sets.canonical(doc)
    # the same set written with other spacing or member order is the same version
    assert contract_key_sets.digest(orjson.loads(orjson.dumps(doc, option=orjson.OPT_INDENT_2))) == msg["sha256"]
    assert contract_key_sets.digest({"keys": [a]}) != msg["sha256"]
    with pytest.raises(ValueError):
        contract_key_sets.message("witnesses", doc, first_used_at=AT, worker="w")


def test_key_set_messages_become_rows_and_hostile_ones_dead_letters():
    good = contract_key_sets.message("analysts", {"keys": [_jwk("x")]}, first_used_at=AT, worker="w/1")
    forged = {**good, "jwks_json": good["jwks_json"].replace('"keys"', '"keys" ')}  # text not the sha256's
    bad = [forged, {**good, "key_set": "witnesses"}, {**good, "kids": "k1"}, {**good, "kids": [1]}, {**good, "v": 2},
           {**good, "first_used_at": "yesterday"}, {k: v for k, v in good.items() if k != "worker"}]
    rows = rows_of([chained(K.key_sets_topic, orjson.dumps(good)),
                    *(chained(K.key_sets_topic, orjson.dumps(b)) for b in bad), chained(K.key_sets_topic, b"[")], K)
    assert rows.get(names.KEY_SETS_TABLE) == [["analysts", good["sha256"], good["kids"], good["jwks_json"],
                                               datetime(2026, 12, 4, 8, 0, 0, 250000, tzinfo=timezone.utc), "w/1"]]
    assert len(rows.get(names.DEAD_LETTER_TABLE)) == len(bad) + 1


def test_changes_between_versions_of_a_set_name_the_keys_added_removed_and_retired():
    a, b, c = _jwk("billing"), _jwk("support"), _jwk("billing")
    versions = [{"keys": [a]}, {"keys": [a, b]}, {"keys": [{**a, "not_after": AT}, b, c]}, {"keys": [b, c]}]
    history = [{"key_set": "emitters", "first_used_at": AT, **{k: v for k, v in contract_key_sets.message(
        "emitters", doc, first_used_at=AT, worker="w").items() if k in ("sha256", "jwks_json")}} for doc in versions]
    out = key_sets.changes(history)
    ta, tb, tc = thumbprint(a), thumbprint(b), thumbprint(c)
    assert [(o["added"], o["removed"], o["retired"]) for o in out] == [
        ([ta], [], []), ([tb], [], []), ([tc], [], [ta]), ([], [ta], [])]
    assert out[2]["names"] == {ta: "billing", tb: "support", tc: "billing"}
    assert "jwks_json" not in out[0]


def test_a_rules_message_holds_the_effective_configuration_and_its_hash_tells_configurations_apart():
    base = RuleConfig(vendor_max_level={"openai": "internal"}, off=frozenset({"odd_hours_run", "burst"}))
    msg = rules_versions.message(base, first_scored_at=AT, scorer="aiaudit-score/s1")
    config = orjson.loads(msg["config_json"])
    assert config["vendor_max_level"] == {"openai": "internal"} and config["off"] == ["burst", "odd_hours_run"]
    assert msg["version"] == RULES_VERSION and msg["off"] == ["burst", "odd_hours_run"]
    assert msg["sha256"] == rules_versions.key(base)
    assert rules_versions.key(dataclasses.replace(base, burst_per_minute=11)) != msg["sha256"]
    assert rules_versions.key(dataclasses.replace(base, vendor_max_level={"openai": "public"})) != msg["sha256"]
    assert rules_versions.key(RuleConfig(vendor_max_level={"openai": "internal"},
                                         off=frozenset({"burst", "odd_hours_run"}))) == msg["sha256"]


def test_rules_messages_become_rows_and_hostile_ones_dead_letters():
    good = rules_versions.message(RuleConfig(), first_scored_at=AT, scorer="s/1")
    bad = [{**good, "config_json": good["config_json"].replace("10", "99")}, {**good, "off": "burst"},
           {**good, "version": None}, {**good, "v": 0}, {**good, "first_scored_at": 5}]
    rows = rows_of([chained(K.rules_topic, orjson.dumps(good)),
                    *(chained(K.rules_topic, orjson.dumps(b)) for b in bad)], K)
    assert rows.get(names.RULES_TABLE) == [[RULES_VERSION, good["sha256"], good["config_json"], [],
                                            datetime(2026, 12, 4, 8, 0, 0, 250000, tzinfo=timezone.utc), "s/1"]]
    assert len(rows.get(names.DEAD_LETTER_TABLE)) == len(bad)
