"""Gateway evidence end to end, and when the broker dies.

- Requests through the gateway become chain records that verify, with the identity,
  classification and policy version the gateway decided, and the policy bundle can be fetched.
- With the broker killed, a fail-closed route refuses (503) and a fail-open route answers; when
  the broker is back, the fail-open route's events arrive (nothing lost).
"""

from __future__ import annotations

import os
import signal
import time

import openai
import pytest

from aiaudit.pipeline import store
from aiaudit.pipeline.query.api import find_records, policy_bundle
from aiaudit.pipeline.store.filters import Filters
from tests.integration.gateway_support import RunningGateway
from tests.integration.support import (
    ChainWorkers,
    own_broker,
    read_topic,
    sink_until_drained,
    verify_store,
    wait_chained,
)
from tests.integration.test_gateway import opened_content

pytestmark = pytest.mark.integration



def ask(client: openai.OpenAI, text: str, label: str) -> None:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}], user=label)


def test_gateway_requests_become_verifiable_chain_records(settings, tmp_path):
    with RunningGateway(settings, tmp_path) as gw:
        ask(gw.client(), "hello there", "e2e-allow")
        ask(gw.client(), "mail bob@example.com", "e2e-redact")
        with pytest.raises(openai.PermissionDeniedError):
            ask(gw.client("sam@itest"), "hello", "e2e-deny")
        ask(gw.client(token=gw.token(sub="dana@itest", act={"sub": "agent:planner"})), "plan", "e2e-agent")
        version = gw.app.state.gateway.policies.current.version
        assert gw.app.state.gateway.evidence.emitter.drain(30) == 0
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        wait_chained(settings, timeout_s=120)
    client = store.connect(settings)
    try:
        sink_until_drained(settings, client)
        report = verify_store(settings, client)
        # Four requests, the policy bundle the gateway loaded and the emitter key set the chain worker
        # checked them with: chained too (kinds policy, key_set).
        assert report.ok and {k: v["records"] for k, v in report.kinds().items()} == {
            "request": 4, "policy": 1, "key_set": 1}, \
            report.failures
        rows = {r["actor_id"]: r for r in find_records(client, settings, Filters(policy_version=version),
                                                       columns=("actor_id", "on_behalf_of", "decision", "prompt_level",
                                                                "prompt_categories", "policy_version", "provider"))}
        assert set(rows) == {"alice@itest", "sam@itest", "agent:planner"}
        assert rows["sam@itest"]["decision"] == "deny" and rows["agent:planner"]["on_behalf_of"] == "dana@itest"
        redacted = find_records(client, settings, Filters(actor="alice@itest"), columns=("decision", "prompt_categories"))
        assert {r["decision"] for r in redacted} == {"allow", "redact"}
        assert ["pii.email"] in [r["prompt_categories"] for r in redacted]
        bundle = policy_bundle(settings, version, client)
        assert bundle is not None and bundle["policy_id"] == "itest" and "routes:" in bundle["source_yaml"]
    finally:
        client.close()


@pytest.fixture
def broker_to_kill(tmp_path, chdb_dir):
    with own_broker(tmp_path, chdb_dir, name="gwdown") as running:
        yield running


@pytest.mark.fault
def test_broker_down_fail_closed_refuses_fail_open_answers_and_loses_nothing(broker_to_kill, tmp_path):
    kafka, settings = broker_to_kill
    with RunningGateway(settings, tmp_path, max_unacked_s=1.0) as gw:
        ask(gw.client(), "before", "before")
        assert gw.app.state.gateway.evidence.emitter.drain(30) == 0
        os.kill(kafka.pid(), signal.SIGKILL)
        # The first request after the kill may still be accepted (nothing looked unhealthy yet);
        # within a few seconds the fail-closed route must refuse.
        refused, open_answers = False, 0
        deadline = time.monotonic() + 30
        while not refused and time.monotonic() < deadline:
            try:
                ask(gw.client(), "closed route", "closed")
            except openai.InternalServerError as exc:
                assert exc.status_code == 503 and "fails closed" in str(exc)
                refused = True
            ask(gw.client(route="open"), "open route", "open")  # fail-open: answered while the broker is down
            open_answers += 1
            time.sleep(0.3)
        assert refused
        ask(gw.client(route="open"), "open route", "open")
        open_answers += 1
        kafka.up()
        assert gw.app.state.gateway.evidence.emitter.drain(60) == 0
        events = gw.events()
    labels = [e["actor"]["untrusted_label"] for e in events]
    assert labels.count("open") == open_answers  # every answered fail-open request has its event
    assert labels.count("before") == 1
    # Refusals are recorded too (queued while the broker was down).
    refusals = [e for e in events if e["actor"]["untrusted_label"] == "closed" and e["decision"] == "deny"]
    assert refusals and all("fails closed" in e["decision_reasons"][0] for e in refusals)
    # Emitter numbering has no gap: the edge-to-chain completeness check would see any loss.
    seqs = sorted(e["emitter_seq"] for e in events)
    assert seqs == list(range(len(seqs)))
    content = read_topic(settings, settings.kafka.content_topic)
    assert not any(b"open route" in m.value() for m in content)  # content: full, sealed ...
    assert sum(1 for m in content if opened_content(settings, m.value())["prompt"] == "open route") == open_answers
