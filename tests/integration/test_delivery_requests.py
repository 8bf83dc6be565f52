"""Request events pushed to a SIEM by the delivery agent (issue 26 item 3): every chained request
record reaches a `send: requests` webhook as an OCSF 1.8.0 API Activity event, valid under that
version's schema, carrying its signed payload and integrity fields; through a receiver that
answers 503 to each batch's first try (retried), a destination that never answers (dead-lettered
after its last attempt, with the records it held named), and a kill -9 of the agent (the batch in
work re-sent; nothing lost). Every attempt is a delivery record."""

from __future__ import annotations

import json
import signal
import time
from collections import defaultdict
from pathlib import Path

import jsonschema
import orjson
import pytest
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from aiaudit.pipeline.ocsf import OCSF_VERSION
from aiaudit.pipeline.ops.supervisor import start_worker
from aiaudit.pipeline.query.ocsf import PROFILES
from tests.integration.support import ChainWorkers, emit_synthetic, read_topic, settings_env, wait_chained
from tests.integration.test_delivery_agent import SECRET, Receiver, stop_all
from tests.integration.test_delivery_transports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.timeout(600)]
N = 240


def test_request_events_reach_the_siem_as_valid_ocsf_through_retries_dead_letters_and_a_kill(settings, tmp_path: Path):
    receiver = Receiver()
    closed = free_port()
    dest_file = tmp_path / "destinations.yaml"
    dest_file.write_text(f"""
destinations:
  - {{name: siem, kind: webhook, send: requests, url: "http://127.0.0.1:{receiver.port}/flaky",
      secret_env: DELIVER_TEST_KEY, backoff_s: 0.2, backoff_max_s: 1}}
  - {{name: down, kind: webhook, send: requests, url: "http://127.0.0.1:{closed}/x", secret_env: DELIVER_TEST_KEY,
      max_attempts: 2, backoff_s: 0.1, backoff_max_s: 0.2}}
""")
    _, sent = emit_synthetic(settings, N, emitter_id="edge-gw-requests")
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        wait_chained(settings)
    env = {**settings_env(settings), "AIAUDIT_DELIVER__DESTINATIONS_FILE": str(dest_file),
           "DELIVER_TEST_KEY": SECRET, "AIAUDIT_DELIVER__REQUEST_BATCH": "20"}
    logs = tmp_path / "deliver.log"
    procs = [start_worker("deliver", log_file=logs, env=env)]
    want = {e["event_id"] for e in sent}

    def got() -> set[str]:
        return {e["metadata"]["uid"] for r in receiver.accepted("flaky") for e in r["doc"]["events"]}

    try:
        deadline = time.monotonic() + 120
        while len(receiver.accepted("flaky")) < 2 and time.monotonic() < deadline:
            assert procs[-1].poll() is None, logs.read_text()[-3000:]
            time.sleep(0.05)
        assert receiver.accepted("flaky"), logs.read_text()[-3000:]
        procs[-1].send_signal(signal.SIGKILL)  # mid-way: batches delivered, others in work or waiting
        procs[-1].wait(10)
        assert got() < want
        procs.append(start_worker("deliver", log_file=logs, env=env))
        deadline = time.monotonic() + 180
        while got() != want and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # the dead letters of the closed port follow their last retry
        records = [orjson.loads(m.value()) for m in read_topic(settings, settings.kafka.deliveries_topic)]
        dead = [orjson.loads(m.value()) for m in read_topic(settings, settings.kafka.delivery_dlq_topic, partitions=1)]
    finally:
        stop_all(procs, receiver)
    assert got() == want, (len(want - got()), logs.read_text()[-3000:])
    assert not receiver.refused, receiver.refused  # every POST signed with the destination's key

    # Each event whole and valid OCSF of the one version, its signed payload verbatim beside its coordinates.
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION)).get_class_schema(
        class_name="api_activity", profiles=PROFILES)
    validator = jsonschema.Draft202012Validator(schema)
    by_id = {e["event_id"]: e for e in sent}
    seqs: dict[str, set[int]] = defaultdict(set)
    for r in receiver.accepted("flaky"):
        span = r["doc"]["requests"]
        assert span["count"] == len(r["doc"]["events"]) <= 20
        for event in r["doc"]["events"]:
            assert not list(validator.iter_errors(event))
            integrity = event["unmapped"]["aiaudit"]
            assert integrity["origin"] == span["origin"] and span["first_seq"] <= integrity["seq"] <= span["last_seq"]
            signed = json.loads(event["raw_data"])
            assert signed["event"]["event_id"] == event["metadata"]["uid"]
            assert signed["event"]["actor"]["id"] == by_id[event["metadata"]["uid"]]["actor"]["id"]
            seqs[integrity["origin"]].add(integrity["seq"])
    assert sum(len(s) for s in seqs.values()) == N and all(s == set(range(len(s))) for s in seqs.values())

    # Every attempt recorded: the 503s retried, the closed port dead-lettered after its two attempts,
    # and its dead letters name every record it held.
    siem = [d for d in records if d["destination"] == "siem"]
    assert {d["status"] for d in siem if d["outcome"] == "failed"} == {"503"}
    assert any(d["outcome"] == "delivered" and d["attempt"] == 2 for d in siem)  # a retry delivered the batch
    assert all(d["detail"]["requests"]["count"] >= 1 for d in siem)
    down = [d for d in records if d["destination"] == "down"]
    assert {d["outcome"] for d in down} == {"failed", "dead_lettered"}
    assert all(d["attempt"] == 2 for d in down if d["outcome"] == "dead_lettered")
    held = defaultdict(set)
    for d in dead:
        if "requests" in d:
            span = d["requests"]
            held[span["origin"]] |= set(range(span["first_seq"], span["last_seq"] + 1))
    assert {o: s for o, s in held.items()} == dict(seqs)  # every record the down destination was to get
