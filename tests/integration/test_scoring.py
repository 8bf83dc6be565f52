"""Anomaly scoring on the real pipeline: train on normal traffic, promote, score live traffic
with injected misuse, and check the OCSF alerts point at verifiable chain records."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer

from aiaudit.detectors.features import FeatureExtractor
from aiaudit.detectors.model import save, train
from aiaudit.detectors.rules import RULES_VERSION
from aiaudit.detectors.traffic import labelled_traffic
from aiaudit.pipeline.chain.record import Record
from aiaudit.pipeline.contract.analyst_keys import ANALYSTS_DIR, load_status_signer, new_analyst_key
from aiaudit.pipeline.contract.analyst_keys import key_set_file as analyst_key_set_file
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.ops.labelled import emit_all
from aiaudit.pipeline.ops.progress import scoring_done
from aiaudit.pipeline.query.alerts import list_alerts, set_status, status_history
from aiaudit.pipeline.query.incidents import incident_history, list_incidents, set_incident_status, show_incident
from aiaudit.pipeline.score.incidents import group
from aiaudit.pipeline.score.models import events_from_store, promote, train_from
from aiaudit.pipeline.score.step import score_records
from aiaudit.pipeline.store import alerts as alerts_store
from aiaudit.pipeline.store.filters import Filters
from tests.integration.support import (
    SOAK,
    ChainWorkers,
    free_port_pair,
    metric_value,
    read_topic,
    scrape,
    settings_env,
    sink_until_drained,
    verify_store,
    wait_chained,
)

pytestmark = pytest.mark.integration


def operator(settings):
    """The operator's record key, which signs promotions."""
    from aiaudit.pipeline.keys import active_key_file, load_signer

    return load_signer(active_key_file(settings.signing.keys_dir, None))


def test_misuse_raises_ocsf_alerts_that_point_at_verifiable_records(settings, client, tmp_path, monkeypatch):
    from aiaudit.pipeline.score import models

    monkeypatch.setattr(models, "TRAINING_PAGE", 997)  # the training read in many pages: none lost, none twice
    train_events, test = labelled_traffic(seed=7, test_days=1, people=12, agents=2)
    db = settings.clickhouse.database
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        emit_all(settings, train_events, "edge-train")
        sink_until_drained(settings, client)
        manifest = train_from(events_from_store(settings, Filters()), version="m1", seed=7,
                              models_dir=settings.score.models_dir)
        assert manifest["training"]["rows"] == len(train_events)
        promote(settings.score.models_dir, "m1", operator(settings), by="itest")

        metrics_port = free_port_pair()
        workers.start("s1", role="score", extra=("--metrics-port", str(metrics_port)))
        emit_all(settings, [ev for ev, _ in test], "edge-live")
        wait_chained(settings)
        total = len(train_events) + len(test)
        deadline = time.monotonic() + 300
        while not scoring_done(settings):
            assert time.monotonic() < deadline, "the scoring worker did not score every record in time"
            time.sleep(1.0)
        scraped = scrape(metrics_port)  # the worker's own count, read as Prometheus reads it
        sink_until_drained(settings, client)

    labels = {str(uuid.UUID(ev["event_id"])): label for ev, label in test}
    scored = client.query(
        f"SELECT e.event_id, s.severity FROM {db}.scores AS s INNER JOIN {db}.evidence AS e "
        "ON s.origin = e.origin AND s.seq = e.seq LIMIT 1 BY s.origin, s.seq").result_rows
    assert len(scored) == total  # every chained record scored once in query results
    alerted = {eid for eid, sev in scored if sev}
    # Normal traffic: the normal events of identities with no misuse that day (a day's volume made
    # abnormal by its misuse is a volume finding on every later request of that day, and one incident).
    misused = {(ev["actor"]["id"], ev["occurred_at"][:10]) for ev, label in test if label != "normal"}
    live_normal = [str(uuid.UUID(ev["event_id"])) for ev, label in test
                   if label == "normal" and (ev["actor"]["id"], ev["occurred_at"][:10]) not in misused]
    exfil = [eid for eid, label in labels.items() if label == "exfil_burst"]
    assert len(alerted & set(live_normal)) <= 0.03 * len(live_normal)  # normal traffic under the budget
    assert len(alerted & set(exfil)) >= 0.5 * len(exfil)  # the exfiltration burst is caught

    # Each alert is an OCSF Detection Finding naming chain coordinates that hold that very record.
    alerts = client.query(f"SELECT finding, origin, seq, leaf_hash FROM {db}.alerts").result_rows
    assert alerts
    # Its metrics say what it did: every record scored once, each finding counted under its severity.
    assert metric_value(scraped, "aiaudit_events_in_total", worker="score", kind="request") == total
    by_severity = Counter(json.loads(f)["severity"].lower() for f, *_ in alerts)
    assert {dict(labels)["severity"]: v for (n, labels), v in scraped.items()
            if n == "aiaudit_findings_total"} == dict(by_severity)
    detectors = set()
    for finding, origin, seq, leaf in alerts:
        f = json.loads(finding)
        assert f["class_uid"] == 2004 and f["finding_info"]["analytic"]["version"] in ("m1", RULES_VERSION)
        assert f["unmapped"]["detections"] and all(d["reason"] for d in f["unmapped"]["detections"])
        detectors |= {d["detector"] for d in f["unmapped"]["detections"]}
        stored = client.query(f"SELECT leaf_hash FROM {db}.evidence WHERE origin = {{o:String}} AND seq = {{s:UInt64}} LIMIT 1",
                              parameters={"o": origin, "s": seq}).result_rows
        assert stored and stored[0][0] == leaf
    # The model and the rules raise into one alert stream (no policy file here: secrets sent anywhere are flagged).
    assert {"isolation-forest", "prompt_injection", "secrets_sent"} <= detectors, detectors
    assert verify_store(settings, client).ok

    # Security operations work the alerts; the status history is append-only ("detected and resolved").
    listed = list_alerts(client, settings, limit=1000)
    assert len(listed) == len({row["finding_uid"] for row in listed}) == len({a[1:3] for a in alerts})
    assert all(row["status"] == "open" for row in listed)
    injections = list_alerts(client, settings, detector="prompt_injection", limit=1000)
    assert injections and all("prompt_injection" in r["detectors"].split(",") for r in injections)
    assert len(injections) < len(listed)
    by_model = next(row for row in listed if row["model_version"] == "m1")
    uid = by_model["finding_uid"]
    analyst = load_status_signer(settings.signing.analyst_key_file)  # soc-analyst-1's own key
    set_status(settings, uid, "acknowledged", signer=analyst, note="looking", client=client)
    time.sleep(0.01)
    # From the command line while the store is held (here by this test's client, in production by the
    # running sink): the change travels as an event, and the sink stores it.
    cli = subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", "alerts", "resolve", uid, "--by", "soc-analyst-1",
                          "--note", "user confirmed a bulk export request"], capture_output=True, text=True,
                         env=settings_env(settings), timeout=120)
    assert cli.returncode == 0 and "held by the running sink" in cli.stderr, cli.stderr[-2000:]
    with pytest.raises(ConfigError, match="no alert"):
        set_status(settings, "no-such-alert", "resolved", signer=analyst, client=client)
    # Written to the topic by anyone else: a "resolved by soc-lead" nobody signed, and soc-analyst-1's
    # signed change re-attributed to soc-lead. Both are refused, dead-lettered, never shown as genuine.
    at = datetime.now(timezone.utc)
    signed = analyst.sign(alerts_store.status_message(uid, "resolved", "soc-analyst-1", "x", at))
    forged = [orjson.dumps(alerts_store.status_message(uid, "resolved", "soc-lead", "closing it", at)),
              orjson.dumps({**signed, "by": "soc-lead"})]
    raw = Producer(kafka_config.producer(settings))
    for value in forged:
        raw.produce(settings.kafka.alert_status_topic, key=uid.encode(), value=value)
    assert raw.flush(30) == 0
    sink_until_drained(settings, client)
    history = status_history(client, settings, uid)
    assert [(h["status"], h["actor"]) for h in history][1:] == [("acknowledged", "soc-analyst-1"),
                                                                 ("resolved", "soc-analyst-1")]
    refused = client.query(f"SELECT src_topic, reason, message_b64 FROM {settings.clickhouse.database}.dead_letters "
                           "WHERE reason = 'unauthenticated_analyst'").result_rows
    assert sorted(base64.b64decode(m) for _, _, m in refused) == sorted(forged)
    assert {t for t, _, _ in refused} == {settings.kafka.alert_status_topic}
    assert history[0]["actor"] == "model m1" and "driven by" in history[0]["note"]  # why it was raised
    assert by_model["explanation"].startswith("IsolationForest score")
    resolved = list_alerts(client, settings, status="resolved")
    assert [r["finding_uid"] for r in resolved] == [uid] and resolved[0]["status_by"] == "soc-analyst-1"
    assert len(list_alerts(client, settings, status="open", limit=1000)) == len(listed) - 1

    # The findings are grouped into incidents, one per identity and family (until a quiet time):
    # far fewer than the findings, each counting the findings it holds; the analyst works those.
    incidents = list_incidents(client, settings, limit=1000)
    assert 0 < len(incidents) < len(listed) and len({i["uid"] for i in incidents}) == len(incidents)
    assert sum(i["findings"] for i in incidents) == len(listed)  # every finding in exactly one incident
    exfil_ids = {ev["actor"]["id"] for ev, label in test if label == "exfil_burst"}
    top = next(i for i in incidents if i["identity"] in exfil_ids and i["page_asked"])
    shown = show_incident(client, settings, top["uid"])  # (the command itself: test_documented_commands.py)
    assert shown["incident"]["class_uid"] == 2005 and shown["window_start"] <= shown["last_seen"]
    assert set(shown["incident"]["unmapped"]["incident"]["records"]) <= {f"{a[1]}#{a[2]}" for a in alerts}
    keys = settings.signing.keys_dir
    second = new_analyst_key(keys / ANALYSTS_DIR, "soc-analyst-2", analyst_key_set_file(settings))[0]
    set_incident_status(settings, top["uid"], "acknowledged", signer=load_status_signer(second),
                        note="calling the owner", client=client)
    with pytest.raises(ConfigError, match="not an incident uid"):
        set_incident_status(settings, "'; DROP TABLE incidents --", "resolved", signer=analyst, client=client)
    sink_until_drained(settings, client)
    assert [i["uid"] for i in list_incidents(client, settings, status="acknowledged")] == [top["uid"]]
    steps = [(h["status"], h["actor"]) for h in incident_history(client, settings, top["uid"])]
    assert steps[0] == ("opened", "scoring worker") and steps[-1] == ("acknowledged", "soc-analyst-2")
    # Every kind chained on the way (findings, incidents, status changes, the refused ones as dead
    # letters) verifies, every status change under its analyst's key, every table row for row.
    report = verify_store(settings, client)
    assert report.ok, report.text()
    assert {"finding", "incident", "status_change", "dead_letter"} <= set(report.kinds())
    assert report.projections["alert_status"] == 3 and report.projections["dead_letters"] >= 2


def test_a_promotion_a_rules_change_and_a_new_emitter_key_are_taken_up_without_a_restart_and_recorded(
        settings, client, tmp_path):
    from aiaudit.pipeline import store
    from aiaudit.pipeline.contract.emitter_keys import key_set_file, new_emitter_key
    from aiaudit.pipeline.keys import KeyRing, read_jwks
    from aiaudit.pipeline.score.models import promotion_history
    from aiaudit.pipeline.store import key_sets, rules_versions

    train_events, test = labelled_traffic(seed=7, test_days=1, people=12, agents=2)
    db = settings.clickhouse.database
    for version, seed in (("m1", 7), ("m2", 8)):
        save(train(np.array([FeatureExtractor()(e) for e in train_events]), version=version, seed=seed),
             settings.score.models_dir)
    promote(settings.score.models_dir, "m1", operator(settings), by="ops-1")
    live = [ev for ev, _ in test]
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("format: 1\nsettings:\n  burst_per_minute: 12\n")
    with ChainWorkers(settings, tmp_path, env={"AIAUDIT_SCORE__RULES_FILE": str(rules_file)}) as workers:
        workers.start("w1")
        workers.start("s1", role="score")
        emit_all(settings, live[:300], "edge-a")
        wait_chained(settings)
        deadline = time.monotonic() + 120
        while not scoring_done(settings):
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.5)
        promote(settings.score.models_dir, "m2", operator(settings), by="ops-2")
        rules_file.write_text("format: 1\nsettings:\n  burst_per_minute: 15\ndisabled: [odd_hours_run]\n")
        _, new_kid, _ = new_emitter_key(tmp_path / "billing", "billing", key_set_file(settings))
        time.sleep(3)  # the worker looks at live.json every 2 s
        emit_all(settings, live[300:600], "edge-b")
        wait_chained(settings)
        while not scoring_done(settings):
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.5)
        sink_until_drained(settings, client)

    by_model = dict(client.query(f"SELECT model_version, count() FROM (SELECT * FROM {db}.scores LIMIT 1 BY origin, seq) "
                                 "GROUP BY model_version").result_rows)
    assert by_model == {"m1": 300, "m2": 300}  # the same worker, no restart, switched between two batches
    history = promotion_history(client, settings, KeyRing.from_jwks(read_jwks(settings.signing.keys_dir)))
    assert [(h["version"], h["promoted_by"], h["signature"]) for h in history] == [
        ("m1", "ops-1", "verified"), ("m2", "ops-2", "verified")]
    manifests = {v: json.loads((settings.score.models_dir / f"{v}.json").read_text())["sha256"] for v in ("m1", "m2")}
    assert [h["sha256"] for h in history] == [manifests["m1"], manifests["m2"]]
    assert history[0]["first_scored_at"] < history[1]["first_scored_at"]
    assert len(history[0]["scorers"]) == 1 and history[0]["scorers"][0].startswith(f"{settings.kafka.score_app}/")

    # Each rule configuration and each emitter key set is on record from the first batch it governed.
    db_name = store.database(settings)
    names_, rows = store.query_rows(client, *rules_versions.select_history(db_name))
    rules = [dict(zip(names_, r)) for r in rows]
    assert [(json.loads(r["config_json"])["burst_per_minute"], list(r["off"])) for r in rules] == [
        (12, []), (15, ["odd_hours_run"])]
    assert all(r["version"].startswith(RULES_VERSION + "+") for r in rules) and rules[0]["version"] != rules[1]["version"]
    first_finding = client.query(f"SELECT detected_at FROM {db}.alerts ORDER BY detected_at LIMIT 1").result_rows
    assert not first_finding or rules[0]["first_scored_at"] <= first_finding[0][0]
    names_, rows = store.query_rows(client, *key_sets.select_history(db_name, "emitters"))
    changes = key_sets.changes([dict(zip(names_, r)) for r in rows])
    assert [c["added"] for c in changes][1:] == [[new_kid]] and len(changes) == 2, changes
    assert changes[1]["names"][new_kid] == "billing" and changes[0]["first_used_at"] < changes[1]["first_used_at"]
    assert changes[0]["workers"][0].startswith(f"{settings.kafka.chain_group}/")

    # A promotion record altered in the store no longer verifies against the operator's key.
    client.command(f"ALTER TABLE {db}.model_promotions UPDATE live_json = replaceOne(live_json, 'ops-2', 'ops-9') "
                   "WHERE version = 'm2' SETTINGS mutations_sync = 1")
    tampered = promotion_history(client, settings, KeyRing.from_jwks(read_jwks(settings.signing.keys_dir)))
    assert tampered[0]["signature"] == "verified" and tampered[1]["signature"].startswith("NO: ")


def _expected(records, detector) -> dict[tuple[str, int], float]:
    """Scores of the pure step over every record in chain order, one state per identity."""
    states: dict = {}
    out = {}
    for rec in records:
        (s,) = score_records([rec], states, detector, detected_at_ms=0)
        out[(rec.origin, rec.seq)] = round(s.score, 6)
    return out


def _scored_progress(settings) -> int:
    from aiaudit.pipeline.kafka.io import committed_offsets

    k = settings.kafka
    return sum(max(0, o) for o in committed_offsets(settings, k.score_app, k.chain_topic, k.partitions).values())


def _wait_scored(settings, workers, deadline: float) -> None:
    while not scoring_done(settings):
        assert time.monotonic() < deadline, "the scoring workers did not finish\n" + workers.logs()
        time.sleep(0.3)


@pytest.mark.fault
def test_scores_and_findings_are_exactly_the_pure_steps_through_kill9_and_rebalances(settings, tmp_path):
    """kill -9 of the scoring worker at random moments (mid-batch included), restarts, then two
    workers sharing the partitions with a rebalance when one leaves: every record is scored once,
    with the score the pure step gives over the whole chain (so identity state was restored exactly
    as of each committed batch), and every finding is raised once, none lost."""
    import random

    rng = random.Random(29)
    train_events, test = labelled_traffic(seed=11, train_days=1, test_days=1)
    fx = FeatureExtractor()
    detector = train(np.array([fx(e) for e in train_events]), version="r1", seed=11)
    save(detector, settings.score.models_dir)
    promote(settings.score.models_dir, "r1", operator(settings), by="itest")
    small = settings.model_copy(update={"score": settings.score.model_copy(update={"batch_events": 150})})
    with ChainWorkers(small, tmp_path) as workers:
        workers.start("w1")
        emit_all(settings, train_events, "edge-a")
        emit_all(settings, [ev for ev, _ in test], "edge-b")
        wait_chained(settings)
        total = sum(1 for _ in read_topic(settings, settings.kafka.chain_topic))
        deadline = time.monotonic() + 420
        kills = 0
        for round_ in range(4 if SOAK else 2):  # kill -9 once some batches of this run are committed, at random
            before = _scored_progress(settings)
            workers.start(f"s{round_}", role="score")
            while _scored_progress(settings) <= before:
                assert time.monotonic() < deadline, "no scoring progress\n" + workers.logs()
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.4))
            if _scored_progress(settings) >= total:
                break
            workers.kill9(f"s{round_}")
            kills += 1
        assert kills >= 2, "the worker finished before it could be killed twice: give it more to score"
        # Two workers share the partitions; one leaves half way (a rebalance), the other finishes.
        workers.start("t1", role="score")
        workers.start("t2", role="score")
        half = (_scored_progress(settings) + total) // 2
        while _scored_progress(settings) < half and not scoring_done(settings):
            assert time.monotonic() < deadline, "no progress with two workers\n" + workers.logs()
            time.sleep(0.1)
        workers.procs["t1"].terminate()
        _wait_scored(settings, workers, deadline)

    chain = sorted((Record.from_wire(m.value()) for m in read_topic(settings, settings.kafka.chain_topic)),
                   key=lambda r: (r.origin, r.seq))
    rows = [row for msg in read_topic(settings, settings.kafka.scores_topic) for row in json.loads(msg.value())]
    keys = [(row["origin"], row["seq"]) for row in rows]
    assert len(keys) == len(set(keys)) == len(chain), "a record scored twice, or not at all"
    expected = _expected(chain, detector)
    assert {(row["origin"], row["seq"]): row["score"] for row in rows} == expected
    findings = [json.loads(m.value()) for m in read_topic(settings, settings.kafka.alerts_topic)]
    uids = [f["finding_info"]["uid"] for f in findings]
    states: dict = {}
    want = set()
    want_incidents: dict[str, int] = {}
    want_pages = set()
    for rec in chain:
        (s,) = score_records([rec], states, detector, detected_at_ms=0)
        if s.finding is not None:
            want.add(s.finding["finding_info"]["uid"])
        for u in group([s], states):
            want_incidents[u.incident.uid] = u.incident.findings
            if u.page:
                want_pages.add(u.incident.uid)
    assert len(uids) == len(set(uids)), "a finding raised twice"
    assert set(uids) == want and want, "a finding lost (or one the pure step would not raise)"
    # Incidents (kept in the identity states, written in the same transactions): each as the pure
    # step groups the whole chain, and each page asked for exactly once.
    got: dict[str, int] = {}
    pages: dict[str, int] = {}
    for m in read_topic(settings, settings.kafka.incidents_topic):
        inc = json.loads(m.value())
        uid = inc["unmapped"]["incident"]["uid"]
        got[uid] = max(got.get(uid, 0), inc["unmapped"]["incident"]["findings"])
        pages[uid] = pages.get(uid, 0) + bool(inc["unmapped"]["page"])
    assert got == want_incidents and want_incidents, "an incident lost, or its findings counted twice"
    assert {u for u, n in pages.items() if n} == want_pages and max(pages.values()) == 1, "a page asked twice or lost"
