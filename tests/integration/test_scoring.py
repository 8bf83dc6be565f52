"""Anomaly scoring on the real pipeline: train on normal traffic, promote, score live traffic
with injected misuse, and check the OCSF alerts point at verifiable chain records."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from detectors.features import FeatureExtractor
from detectors.model import save, train
from detectors.traffic import labelled_traffic
from pipeline.chain.record import Record, parse_payload
from pipeline.errors import ConfigError
from pipeline.ops.labelled import emit_all
from pipeline.ops.progress import scoring_done
from pipeline.query.alerts import list_alerts, set_status, status_history
from pipeline.score.models import events_from_store, promote, train_from
from pipeline.score.step import score_records
from pipeline.store.filters import Filters
from tests.integration.support import (
    ChainWorkers,
    read_topic,
    settings_env,
    sink_until_drained,
    verify_store,
    wait_chained,
)

pytestmark = pytest.mark.integration


def operator(settings):
    """The operator's record key, which signs promotions."""
    from pipeline.keys import active_key_file, load_signer

    return load_signer(active_key_file(settings.signing.keys_dir, None))


def test_misuse_raises_ocsf_alerts_that_point_at_verifiable_records(settings, client, tmp_path):
    train_events, test = labelled_traffic(seed=7)
    db = settings.clickhouse.database
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        emit_all(settings, train_events, "edge-train")
        sink_until_drained(settings, client)
        manifest = train_from(events_from_store(settings, Filters()), version="m1", seed=7,
                              models_dir=settings.score.models_dir)
        assert manifest["training"]["rows"] == len(train_events)
        promote(settings.score.models_dir, "m1", operator(settings), by="itest")

        workers.start("s1", role="score")
        emit_all(settings, [ev for ev, _ in test], "edge-live")
        wait_chained(settings)
        total = len(train_events) + len(test)
        deadline = time.monotonic() + 300
        while not scoring_done(settings):
            assert time.monotonic() < deadline, "the scoring worker did not score every record in time"
            time.sleep(1.0)
        sink_until_drained(settings, client)

    labels = {str(uuid.UUID(ev["event_id"])): label for ev, label in test}
    scored = client.query(
        f"SELECT e.event_id, s.severity FROM {db}.scores AS s INNER JOIN {db}.evidence AS e "
        "ON s.origin = e.origin AND s.seq = e.seq LIMIT 1 BY s.origin, s.seq").result_rows
    assert len(scored) == total  # every chained record scored once in query results
    alerted = {eid for eid, sev in scored if sev}
    live_normal = [eid for eid, label in labels.items() if label == "normal"]
    exfil = [eid for eid, label in labels.items() if label == "exfil_burst"]
    assert len(alerted & set(live_normal)) <= 0.03 * len(live_normal)  # normal traffic under the budget
    assert len(alerted & set(exfil)) >= 0.5 * len(exfil)  # the exfiltration burst is caught

    # Each alert is an OCSF Detection Finding naming chain coordinates that hold that very record.
    alerts = client.query(f"SELECT finding, origin, seq, leaf_hash FROM {db}.alerts").result_rows
    assert alerts
    for finding, origin, seq, leaf in alerts:
        f = json.loads(finding)
        assert f["class_uid"] == 2004 and f["finding_info"]["analytic"]["version"] == "m1"
        stored = client.query(f"SELECT leaf_hash FROM {db}.evidence WHERE origin = {{o:String}} AND seq = {{s:UInt64}} LIMIT 1",
                              parameters={"o": origin, "s": seq}).result_rows
        assert stored and stored[0][0] == leaf
    assert verify_store(settings, client).ok

    # Security operations work the alerts; the status history is append-only ("detected and resolved").
    listed = list_alerts(client, settings, limit=1000)
    assert len(listed) == len({row["finding_uid"] for row in listed}) == len({a[1:3] for a in alerts})
    assert all(row["status"] == "open" for row in listed)
    uid = listed[0]["finding_uid"]
    set_status(settings, uid, "acknowledged", by="soc-analyst-1", note="looking", client=client)
    time.sleep(0.01)
    # From the command line while the store is held (here by this test's client, in production by the
    # running sink): the change travels as an event, and the sink stores it.
    cli = subprocess.run([sys.executable, "-m", "pipeline.cli", "alerts", "resolve", uid, "--by", "soc-analyst-1",
                          "--note", "user confirmed a bulk export request"], capture_output=True, text=True,
                         env=settings_env(settings), timeout=120)
    assert cli.returncode == 0 and "held by the running sink" in cli.stderr, cli.stderr[-2000:]
    with pytest.raises(ConfigError, match="no alert"):
        set_status(settings, "no-such-alert", "resolved", by="x", client=client)
    sink_until_drained(settings, client)
    history = status_history(client, settings, uid)
    assert [h["status"] for h in history] == ["raised", "acknowledged", "resolved"]
    assert history[0]["actor"] == "model m1" and "driven by" in history[0]["note"]  # why it was raised
    assert listed[0]["explanation"].startswith("IsolationForest score")
    resolved = list_alerts(client, settings, status="resolved")
    assert [r["finding_uid"] for r in resolved] == [uid] and resolved[0]["status_by"] == "soc-analyst-1"
    assert len(list_alerts(client, settings, status="open", limit=1000)) == len(listed) - 1


def _scores_by_record(settings) -> dict[tuple[str, int], float]:
    out = {}
    for msg in read_topic(settings, settings.kafka.scores_topic):
        for row in json.loads(msg.value()):
            out[(row["origin"], row["seq"])] = row["score"]
    return out


def _expected(records, detector) -> dict[tuple[str, int], float]:
    """Scores of the pure step over every record in chain order, one state per identity."""
    states: dict = {}
    out = {}
    for rec in records:
        (s,) = score_records([rec], states, detector, detected_at_ms=0)
        out[(rec.origin, rec.seq)] = round(s.score, 6)
    return out


@pytest.mark.known_bug
def test_a_restarted_scoring_worker_recovers_identity_state_from_its_table(settings, tmp_path):
    """Open bug: in about 1 run in 3 the restarted Faust worker recovers its table, scores a batch
    or two, then receives no more records from some chain partitions (no error logged), and the
    test times out. When it finishes, every score equals the pure step's over the whole chain,
    so the state was recovered exactly (the `value_type=dict` recovery failure is fixed and
    covered by tests/unit/score/test_step.py)."""
    train_events, test = labelled_traffic(seed=11)
    fx = FeatureExtractor()
    detector = train(np.array([fx(e) for e in train_events]), version="r1", seed=11)
    save(detector, settings.score.models_dir)
    promote(settings.score.models_dir, "r1", operator(settings), by="itest")
    events = [ev for ev, _ in test]
    half = len(events) // 2
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        emit_all(settings, events[:half], "edge-a")
        wait_chained(settings)
        first = workers.start("s1", role="score")
        deadline = time.monotonic() + 300
        while not scoring_done(settings):
            assert time.monotonic() < deadline, "first scoring worker did not finish"
            time.sleep(0.5)
        first.terminate()
        first.wait(60)
        emit_all(settings, events[half:], "edge-b")
        wait_chained(settings)
        workers.start("s2", role="score")  # must rebuild the table from its changelog first
        while not scoring_done(settings):
            assert time.monotonic() < deadline, "restarted scoring worker did not finish\n" + workers.logs()
            time.sleep(0.5)
    chain = sorted((Record.from_wire(m.value()) for m in read_topic(settings, settings.kafka.chain_topic)),
                   key=lambda r: (r.origin, r.seq))
    second = {(r.origin, r.seq) for r in chain
              if parse_payload(r.payload)["event"]["emitter_id"] == "edge-b"}
    got = _scores_by_record(settings)
    expected = _expected(chain, detector)
    assert len(got) == len(chain) and got == expected
    # The test can fail: a worker that forgot its state would have scored the second half otherwise.
    first_of_each_chain: dict[str, tuple[str, int]] = {}
    for key in sorted(second):
        first_of_each_chain.setdefault(key[0], key)
    forgetful = {}
    states_lost: dict[str, dict] = {}
    for rec in chain:
        key = (rec.origin, rec.seq)
        if key == first_of_each_chain.get(rec.origin):
            states_lost[rec.origin] = {}
        state = states_lost.setdefault(rec.origin, {})
        (s,) = score_records([rec], state, detector, detected_at_ms=0)
        forgetful[key] = round(s.score, 6)
    assert sum(1 for k in second if forgetful[k] != expected[k]) > len(second) // 4
