"""The console's records pages on real chDB: newest first, each record once though stored twice
(a redelivery), and the cursor pages through every match with no record twice or left out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from aiaudit.pipeline import store
from aiaudit.pipeline.console import reads
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.gateway.policy import parse_policy
from aiaudit.pipeline.ops.demo import demo_policies
from aiaudit.pipeline.store import policies as policies_table
from aiaudit.pipeline.store.filters import Filters

pytestmark = pytest.mark.integration


def test_pages_hold_each_record_once_and_the_cursor_reaches_every_one(settings, client):
    db = store.database(settings)
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    rows = [[t0 + timedelta(seconds=i // 3), "ana" if i % 2 else "ben", f"o/p{i % 3}", i, f"{i:064x}"]
            for i in range(240)]
    dupes = [r for r in rows if r[3] % 5 == 0 and r[1] == "ana"]  # a redelivery stored these twice
    store.insert(client, f"{db}.evidence", rows + dupes, ("ts", "actor_id", "origin", "seq", "leaf_hash"))
    seen: list[tuple[str, int]] = []
    before = None
    pages = 0
    while True:
        shown = reads.records(client, settings, Filters(actor="ana"), before)
        page = shown.values["records"]
        assert [r["ts"] for r in page] == sorted((r["ts"] for r in page), reverse=True)
        seen += [(r["origin"], r["seq"]) for r in page]
        pages += 1
        if shown.values["next"] is None:
            break
        before = reads.parse_cursor(shown.values["next"])
    assert pages == 3 and len(seen) == len(set(seen)) == 120  # 50 + 50 + 20, each once
    assert set(seen) == {(r[2], r[3]) for r in rows if r[1] == "ana"}


def test_the_policy_pages_say_what_changed_and_never_compare_a_bundle_that_is_not_its_version(settings, client):
    db = store.database(settings)
    first, second = demo_policies()
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)

    def bundle(p, loaded_at, gateway, canonical=None):
        return [p.policy_id, p.version, p.bundle.version, canonical or p.canonical_json.decode(), p.source_text,
                loaded_at, gateway]

    # a third version whose stored JSON a store writer changed after it was loaded
    third = parse_policy(second.source_text.replace('version: "2026.11.0"', 'version: "2026.12.0"'), source="t")
    tampered = third.canonical_json.decode().replace('"fail":"closed"', '"fail":"open"')
    assert tampered != third.canonical_json.decode()
    store.insert(client, f"{db}.policies", [
        bundle(first, t0, "gw-1"), bundle(second, t0 + timedelta(days=1), "gw-1"),
        bundle(third, t0 + timedelta(days=2), "gw-2", tampered),
        # loaded again later by another gateway: the page shows the first load
        bundle(first, t0 + timedelta(days=3), "gw-9"),
    ], policies_table.COLUMNS)
    rows = [[t0 + timedelta(days=1, hours=i), "ana", "o/p0", i, f"{i:064x}", second.policy_id, second.version]
            for i in range(5)]
    store.insert(client, f"{db}.evidence", rows + rows[:2],  # two stored twice (a redelivery): counted once
                 ("ts", "actor_id", "origin", "seq", "leaf_hash", "policy_id", "policy_version"))

    listed = {p["policy_version"]: p for p in reads.policies(client, settings).values["policies"]}
    assert listed[first.version]["changed"] == ["first version published"]
    assert listed[second.version]["changed"] == ["routes.default.deny changed", "version changed"]
    assert listed[second.version]["decisions"] == 5
    assert listed[third.version]["changed"][0].startswith("NOT this version: its canonical JSON hashes to")

    shown = reads.policy(client, settings, second.version, None).values
    assert shown["problems"] == [] and shown["bundle"]["gateway_id"] == "gw-1"
    assert shown["decided"]["decisions"] == 5 and shown["decided"]["first_decision"].replace(tzinfo=timezone.utc) == t0 + timedelta(days=1)  # UTC, as stored
    compared = shown["compared"]
    assert compared["version"] == first.version and compared["entries"] == ["routes.default.deny changed",
                                                                            "version changed"]
    assert '+        "org.customer_name"' in compared["diff"] and '-      "deny": [],' in compared["diff"]
    assert shown["versions"] == [first.version, second.version, third.version]

    assert reads.policy(client, settings, first.version, None).values["compared"] is None  # the first: nothing before
    assert reads.policy(client, settings, first.version, None).values["bundle"]["gateway_id"] == "gw-1"
    back = reads.policy(client, settings, first.version, second.version).values["compared"]
    assert back["entries"] == ["routes.default.deny changed", "version changed"] and back["diff"][0] == (
        f"--- {second.version}")

    changed = reads.policy(client, settings, third.version, None).values
    assert changed["problems"] and changed["compared"]["entries"] == [] and changed["compared"]["diff"] == []
    against_changed = reads.policy(client, settings, second.version, third.version).values["compared"]
    assert against_changed["problems"] and against_changed["diff"] == []

    with pytest.raises(ConfigError, match="no policy bundle"):
        reads.policy(client, settings, "1.0+sha256.00", None)
    with pytest.raises(ConfigError, match="no published version"):
        reads.policy(client, settings, second.version, "other-policy-version")
