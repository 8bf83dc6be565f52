"""Erasure that keeps every chain valid (issue 23 item 4), on a real gateway, broker, workers and
chDB: kept content is sealed under its subjects' keys, never in plaintext on a topic; `aiaudit
erase` destroys a key after recording it, and the content no longer opens in the store, on the
topic or in a new export; a legal hold refuses erasure and the refusal is recorded; every chain
still verifies and verify lists what was erased, when and by whom."""

from __future__ import annotations

import json
import time

import orjson
import pytest

from aiaudit.pipeline.contract.subject_keys import SubjectKeys
from tests.integration.gateway_support import RunningGateway
from tests.integration.support import ChainWorkers, read_topic, wait_evidence_chained
from tests.integration.test_cli import aiaudit
from tests.integration.test_gateway import chat

pytestmark = pytest.mark.integration


def _until(probe, what: str, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while not (found := probe()):
        assert time.monotonic() < deadline, f"{what} not within {timeout_s:.0f}s"
        time.sleep(1)
    return found


def _show(settings, event_id: str) -> dict:
    out = aiaudit(settings, "content", "show", event_id, "--format", "json")
    assert out.returncode == 0, out.stderr[-1500:]
    return json.loads(out.stdout)[0]


def test_erasure_makes_kept_content_unreadable_everywhere_and_every_chain_still_verifies(settings, tmp_path):
    with RunningGateway(settings, tmp_path) as gw:
        chat(gw.client(route="open"), "the Q3 plan for project alpha", "er-1")  # alice's
        chat(gw.client(route="open", token=gw.token()), "bob's salary is ninety thousand", "er-2")  # dana's
        chat(gw.client(route="open", token=gw.token()), "dana's own draft", "er-3")
        alice, named, dana = (gw.event(label)["event_id"] for label in ("er-1", "er-2", "er-3"))
    topic = read_topic(settings, settings.kafka.content_topic)
    assert len(topic) == 3 and not any(b"Q3 plan" in m.value() or b"salary" in m.value() for m in topic)  # sealed

    with ChainWorkers(settings, tmp_path) as workers:
        for name, role in (("w1", "chain"), ("e1", "evidence"), ("s1", "sink")):
            workers.start(name, role=role)
        _until(lambda: (settings.local.state_dir / "store-api.json").exists(), "the store API")
        first = _until(lambda: (out := aiaudit(settings, "content", "show", alice, "--format", "json")).returncode == 0
                       and json.loads(out.stdout)[0], "alice's content in the store")
        assert first["prompt"] == "the Q3 plan for project alpha" and first["state"] == "open"

        who = ("--by", "soc-analyst-1")
        gone = aiaudit(settings, "erase", "--event-id", named, *who, "--reason", "Art. 17: bob named in a prompt")
        assert gone.returncode == 0 and "erasure record" in gone.stdout, gone.stderr[-1500:]
        held = aiaudit(settings, "hold", "set", "--subject", "dana@itest", *who, "--reason", "litigation 2026-17")
        assert held.returncode == 0, held.stderr[-1500:]
        refused = aiaudit(settings, "erase", "--subject", "dana@itest", *who, "--reason", "Art. 17 request 9")
        assert refused.returncode != 0 and "legal hold" in refused.stderr and "Traceback" not in refused.stderr
        erased = aiaudit(settings, "erase", "--subject", "alice@itest", *who, "--reason", "Art. 17 request 42")
        assert erased.returncode == 0, erased.stderr[-1500:]

        shown = _until(lambda: (s := _show(settings, alice))["state"].startswith("erased") and "request 42" in
                       s["state"] and s, "alice's erasure in the store")
        assert shown["prompt"] is None and "alice@itest key gone" in shown["state"] and "soc-analyst-1" in shown["state"]
        assert _show(settings, named)["state"].startswith("erased (record key gone)")
        assert _show(settings, dana)["prompt"] == "dana's own draft"  # held: still there
        # Retention: content past its scope's retention expires, one erasure record each; held content stays.
        keys = SubjectKeys(settings.content_keys_dir())
        keys.seal("expired-1", ("carol@itest",), "2020-01-01T00:00:00+00:00", {"prompt": "old", "response": None})
        keys.seal("expired-2", ("dana@itest",), "2020-01-01T00:00:00+00:00", {"prompt": "held", "response": None})
        expired = aiaudit(settings, "erase", "--expired", *who)
        assert expired.returncode == 0 and expired.stdout.startswith("1 record(s)' content expired"), expired.stderr
        assert keys.record_key("expired-1") is None and keys.record_key("expired-2") is not None
        wait_evidence_chained(settings)
        _until(lambda: (out := aiaudit(settings, "sql", f"SELECT action, count() AS n FROM {settings.clickhouse.database}"
                                       ".erasures GROUP BY action ORDER BY action", "--format", "json")).returncode == 0
               and json.loads(out.stdout) == [{"action": "erase", "n": 2}, {"action": "expire", "n": 1},
                                              {"action": "hold", "n": 1}, {"action": "refused", "n": 2}],
               "the six erasure records in the store")

    # The copies that stay: the sealed row in ClickHouse and the message on the topic no longer open.
    for m in read_topic(settings, settings.kafka.content_topic):
        doc = orjson.loads(m.value())
        opened = keys.open(doc["event_id"], doc["subjects"], doc["key_ids"], doc["sealed"])
        assert (opened == ["alice@itest"]) if doc["event_id"] == alice else \
            (opened == ["record"]) if doc["event_id"] == named else opened["prompt"] == "dana's own draft"
    row = json.loads(aiaudit(settings, "sql", f"SELECT sealed, subjects, key_ids FROM {settings.clickhouse.database}"
                             f".content WHERE event_id = '{alice}'", "--format", "json").stdout)[0]
    assert keys.open(alice, row["subjects"], json.loads(row["key_ids"]), row["sealed"]) == ["alice@itest"]

    # Every chain still verifies, and verify says what was erased, when, by whom, and what was refused.
    checked = aiaudit(settings, "verify", "--json")
    report = json.loads(checked.stdout)
    assert checked.returncode == 0 and report["ok"], checked.stdout[-2000:] + checked.stderr[-1500:]
    assert report["kinds"]["erasure"]["records"] == 6
    said = {(e["action"], e["subject"] or e["event_id"], e["by"]) for e in report["erasures"]}
    assert said == {("erase", named, "soc-analyst-1"), ("hold", "dana@itest", "soc-analyst-1"),
                    ("refused", "dana@itest", "soc-analyst-1"), ("erase", "alice@itest", "soc-analyst-1"),
                    ("expire", "expired-1", "soc-analyst-1"), ("refused", "expired-2", "soc-analyst-1")}
    assert "content erased" in aiaudit(settings, "verify").stdout

    # A new export carries no content and no key of it.
    export = tmp_path / "after.jsonl"
    made = aiaudit(settings, "export", "--out", str(export))
    assert made.returncode == 0, made.stderr[-1500:]
    assert b"Q3 plan" not in export.read_bytes() and b"salary" not in export.read_bytes()
