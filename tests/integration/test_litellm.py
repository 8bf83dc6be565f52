"""Evidence for a LiteLLM proxy (issue 26 item 1): a real LiteLLM proxy from PyPI, in its own
environment, in front of the vendor stand-in, with aiaudit's callback in its config. Each request
(answered, refused by a guardrail, failed at the vendor) becomes a contract event signed with the
callback's emitter key, chained by the real chain worker; the identity is the one LiteLLM's
(custom) auth established; the proxy's config, its secrets stripped, is the policy bundle each
event names; no credential reaches Kafka."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import time

import openai
import pytest

from aiaudit.pipeline import store
from aiaudit.pipeline.contract.subject_keys import SubjectKeys
from aiaudit.pipeline.gateway.policy import bundle_problems
from aiaudit.pipeline.ops.vendor_standin import FakeUpstream, Served
from aiaudit.pipeline.query.api import policy_bundle
from tests.integration.litellm_support import ALICE, BOT, SECRETS, Proxy
from tests.integration.support import (
    ChainWorkers,
    free_port_pair,
    metric_value,
    own_broker,
    read_topic,
    run_walkthrough,
    scrape,
    sink_until_drained,
    wait_chained,
)

pytestmark = pytest.mark.integration


def _ask(proxy: Proxy, key: str, model: str, text: str, **extra):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0, timeout=30)
    try:
        return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **extra)
    except openai.APIStatusError as exc:
        return exc


def test_every_proxy_request_is_signed_chained_evidence_under_the_proxys_config(settings, client, tmp_path):
    upstream = FakeUpstream()
    with Served(upstream.app) as vendor, Proxy(settings, tmp_path / "proxy", vendor.url + "/v1") as proxy:
        answered = _ask(proxy, ALICE, "gpt-4o", "Summarise our Q3 numbers, then mail ana@acme.example",
                        user="customer-42")
        assert not isinstance(answered, Exception), answered
        assert answered.choices[0].message.content.startswith("echo: Summarise")
        blocked = _ask(proxy, ALICE, "gpt-4o", "What is the status of Project Falcon?")
        assert isinstance(blocked, openai.APIStatusError) and blocked.status_code == 400
        failed = _ask(proxy, BOT, "broken", "reconcile the ledger")
        assert isinstance(failed, openai.APIStatusError) and failed.status_code >= 500
        secret = _ask(proxy, BOT, "gpt-4o", "deploy with AKIAIOSFODNN7EXAMPLE and the usual secret")
        assert not isinstance(secret, Exception), secret
        stranger = _ask(proxy, "sk-not-a-key", "gpt-4o", "hello")
        assert isinstance(stranger, openai.APIStatusError) and stranger.status_code in (401, 403)
        assert len(upstream.received) == 3  # the guardrail's block never reached the vendor
        deadline = time.monotonic() + 60
        while len(sent := read_topic(settings, settings.kafka.requests_topic)) < 5 and time.monotonic() < deadline:
            time.sleep(0.5)
        counted = scrape(proxy.metrics_port)

    assert len(sent) == 5, [m.value()[:100] for m in sent]
    for message in sent:  # no credential, header or vendor key reached Kafka
        assert not any(s in message.value() for s in (*SECRETS, b"sk-not-a-key")), message.value()
    assert metric_value(counted, "aiaudit_litellm_events_total", decision="allow") == 3
    assert metric_value(counted, "aiaudit_litellm_events_total", decision="deny") == 2
    assert not [labels for (name, labels), v in counted.items() if name == "aiaudit_litellm_dropped_total" and v]

    with ChainWorkers(settings, tmp_path) as workers:  # the chain worker checks every emitter signature
        workers.start("w1")
        wait_chained(settings)
        time.sleep(settings.chain.checkpoint_interval_s + 1)
        sink_until_drained(settings, client)
    db = store.database(settings)
    rows = client.query(f"SELECT payload FROM {db}.evidence ORDER BY ts").result_rows
    events = [json.loads(r[0])["event"] for r in rows]
    assert len(events) == 5  # chained, none dead-lettered (each signed by a registered emitter key)
    assert client.command(f"SELECT count() FROM {db}.dead_letters") == 0
    by_text = {e["gen_ai_request_model"] + ":" + e["decision"] + ":" + e["actor"]["id"]: e for e in events}
    assert set(by_text) == {"gpt-4o:allow:alice@acme.example", "gpt-4o:deny:alice@acme.example",
                            "broken:allow:billing-bot", "gpt-4o:allow:billing-bot",
                            "gpt-4o:deny:litellm:unauthenticated"}, set(by_text)

    ok = by_text["gpt-4o:allow:alice@acme.example"]
    assert ok["actor"] == {"type": "workforce", "id": "alice@acme.example", "on_behalf_of": None,
                           "untrusted_label": "customer-42"}  # the `user` field: the key holder's claim
    assert ok["authz"]["role"] == "internal_user" and ok["authz"]["authn_method"] == "litellm"
    assert set(ok["authz"]["scopes"]) == {"team:payments", "key_alias:alice-laptop"}
    assert ok["gen_ai_provider_name"] == "openai" and ok["gen_ai_response_model"] == "gpt-4o"
    assert ok["prompt_classification"]["categories"] == ["pii.email"]
    assert ok["response_classification"]["categories"] == ["pii.email"]  # the echo carries it back
    assert ok["gen_ai_usage_input_tokens"] > 0 and ok["emitter_signature"]["kid"]
    assert ok["decision_reasons"] == ["allowed by the LiteLLM proxy (guardrails run: no-falcon)"]

    # Content by the settings' rule (commitments, the default): HMACs in the signed event, their key
    # sealed to the content topic under the person's key and the record's; the text itself nowhere.
    kept = {json.loads(m.value())["event_id"]: json.loads(m.value())
            for m in read_topic(settings, settings.kafka.content_topic)}
    assert set(kept) == {e["event_id"] for e in events}
    box = kept[ok["event_id"]]
    assert box["subjects"] == ["alice@acme.example"] and b"Summarise" not in json.dumps(box).encode()
    opened = SubjectKeys(settings.content_keys_dir()).open(ok["event_id"], box["subjects"], box["key_ids"],
                                                          box["sealed"])
    assert isinstance(opened, dict) and opened["prompt"] is None and opened["response"] is None
    key = base64.b64decode(opened["key_b64"])
    prompt = "Summarise our Q3 numbers, then mail ana@acme.example"
    assert ok["prompt_commitment"] == hmac.new(key, prompt.encode(), hashlib.sha256).hexdigest()
    assert ok["response_commitment"] == hmac.new(key, ("echo: " + prompt).encode(), hashlib.sha256).hexdigest()

    denied = by_text["gpt-4o:deny:alice@acme.example"]
    assert denied["decision_reasons"][0].startswith("guardrail no-falcon blocked the request")
    assert denied["response_classification"] is None and denied["gen_ai_usage_output_tokens"] == 0
    assert denied["prompt_commitment"] and denied["response_commitment"] is None  # nothing answered

    stranger = by_text["gpt-4o:deny:litellm:unauthenticated"]  # refused at the door, on record too
    assert stranger["decision_reasons"][0].startswith("the LiteLLM proxy refused the request (authentication")
    assert stranger["actor"]["type"] == "service" and stranger["authz"]["scopes"] == []
    assert stranger["actor"]["untrusted_label"].startswith("key-sha256:")  # what was presented, not who

    broken = by_text["broken:allow:billing-bot"]
    assert broken["decision_reasons"][1].startswith("the vendor failed (500)")
    assert any(c.startswith("secret.") for c in by_text["gpt-4o:allow:billing-bot"]["prompt_classification"][
        "categories"])

    # One policy version, the proxy's config: its bundle published, checked, and without secrets.
    (version,) = {e["policy_version"] for e in events}
    assert {e["policy_id"] for e in events} == {"litellm-proxy"} and version.startswith("litellm-config+sha256.")
    bundle = policy_bundle(settings, version, client)
    assert bundle is not None
    assert bundle_problems(version, bundle["canonical_json"], bundle["source_yaml"]) == []
    shown = bundle["source_yaml"]
    assert "no-falcon" in shown and "os.environ/VENDOR_URL" in shown and "30.5" in shown
    assert not any(s.decode() in shown or s.decode() in bundle["canonical_json"] for s in SECRETS)
    assert "[stripped]" in shown


@pytest.mark.fault
def test_with_the_broker_away_requests_are_answered_held_within_bounds_and_the_rest_counted(tmp_path, chdb_dir):
    """The docs' example proxy (examples/litellm, unchanged). The broker is killed: requests are
    answered as fast as before (nothing waits for Kafka); the emitter's buffer and the callback's
    queue hold 5 + 5 events and every further one is counted as dropped and logged. The broker
    back, the held events arrive, each once."""
    with own_broker(tmp_path, chdb_dir, name="litellm") as (kafka, settings), \
            Served(FakeUpstream().app) as vendor, \
            Proxy(settings, tmp_path / "proxy", vendor.url + "/v1", example=True, env={
                "OPENAI_API_KEY": "sk-vendor-example", "LITELLM_MASTER_KEY": "sk-master-example",
                "AIAUDIT_LITELLM__MAX_BUFFERED_EVENTS": "5", "AIAUDIT_EMITTER__MAX_PENDING_EVENTS": "5"}) as proxy:
        first = _ask(proxy, "sk-master-example", "gpt-4o", "hello before the outage")
        assert not isinstance(first, Exception), first
        deadline = time.monotonic() + 60
        while not read_topic(settings, settings.kafka.requests_topic) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(read_topic(settings, settings.kafka.requests_topic)) == 1
        before = time.monotonic()
        _ask(proxy, "sk-master-example", "gpt-4o", "warm")
        normal_s = time.monotonic() - before

        os.kill(kafka.pid(), signal.SIGKILL)
        took = []
        for i in range(30):
            started = time.monotonic()
            answer = _ask(proxy, "sk-master-example", "gpt-4o", f"during the outage {i}")
            took.append(time.monotonic() - started)
            assert not isinstance(answer, Exception), answer  # the proxy answers: evidence never holds it up
        assert max(took) < normal_s + 2.0, (normal_s, took)
        time.sleep(3)
        counted = scrape(proxy.metrics_port)
        dropped = metric_value(counted, "aiaudit_litellm_dropped_total", reason="buffer_full")
        # 31 during the outage ("warm" and 30): 5 in the emitter's buffer, 5 (and one in the sender's
        # hands, waiting for room) in the queue; the rest counted
        assert 31 - 11 <= dropped <= 31 - 10, dropped
        assert "NOT recorded as evidence" in proxy.log.read_text()

        kafka.up()
        expected = 1 + 31 - int(dropped)
        deadline = time.monotonic() + 120
        while len(got := read_topic(settings, settings.kafka.requests_topic)) < expected and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(2)
        got = read_topic(settings, settings.kafka.requests_topic)
    texts = [m.value() for m in got]
    assert len(got) == expected, (len(got), expected)
    assert len(set(texts)) == len(texts)  # each once (the idempotent producer)


def test_the_five_minute_walkthrough_runs_as_written(tmp_path):
    """docs/litellm.md's "Five minutes" block, run by bash as written, with the ports, the state
    folder and HOME (where the keys go) of this test's own; its `make` line is what `make test`
    has already done."""
    vendor, proxy = free_port_pair(30000, 31000), free_port_pair(31000, 32000)
    run = run_walkthrough(tmp_path, "litellm.md", {"18999": str(vendor), "4000": str(proxy)},
                          {"LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "echo: hello" in run.stdout, run.stdout[-3000:]  # the proxy answered through the stand-in
    assert "litellm:master-key" in run.stdout and "ana" in run.stdout  # the record, found by aiaudit query
    assert "litellm-config+sha256." in run.stdout  # the policy it names: the proxy's config, published
