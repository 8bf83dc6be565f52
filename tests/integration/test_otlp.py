"""Evidence for an OpenTelemetry-instrumented application (issue 26 item 2): the official
OpenTelemetry SDK's OTLP/HTTP exporters and its OpenAI instrumentation, in an application calling
the vendor stand-in, send to `aiaudit otlp serve`; each GenAI operation becomes one contract event
signed with the receiver's emitter key, chained by the real chain worker, with the identity the
application put on its spans and its messages (sent as log events) classified."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from aiaudit.pipeline import store
from aiaudit.pipeline.gateway.policy import bundle_problems
from aiaudit.pipeline.ops.vendor_standin import FakeUpstream, Served
from aiaudit.pipeline.otlp.mapping import NOT_CAPTURED, SEMCONV_VERSION
from aiaudit.pipeline.query.api import policy_bundle
from tests.integration.otlp_support import otlp_settings, run_app, sender, serve
from tests.integration.support import ChainWorkers, read_topic, sink_until_drained, wait_chained

pytestmark = pytest.mark.integration


def _wait_for(settings, n: int, timeout_s: float = 30) -> list:
    deadline = time.monotonic() + timeout_s
    while len(got := read_topic(settings, settings.kafka.requests_topic)) < n and time.monotonic() < deadline:
        time.sleep(0.3)
    return got


def test_an_instrumented_applications_genai_calls_are_signed_chained_evidence(settings, client, tmp_path):
    settings = otlp_settings(settings, tmp_path)
    token = sender(settings, "checkout-app")
    upstream = FakeUpstream()
    receiver, served = serve(settings)
    with Served(upstream.app) as vendor, served:
        ok = run_app(served.url, token, vendor.url, "--user", "alice@acme.example", "--roles", "support,refunds",
                     "Refund order 1182 and mail ana@acme.example", "--embed")
        assert "echo: Refund order 1182" in ok.stdout
        failed = run_app(served.url, token, vendor.url, "--agent", "refund-bot", "--user", "alice@acme.example",
                         "--model", "fail-500", "retry the refund")
        assert "the vendor failed: 500" in failed.stdout
        quiet = run_app(served.url, token, vendor.url, "--user", "bob@acme.example", "what is 2+2", content="NO_CONTENT")
        assert "echo: what is 2+2" in quiet.stdout
        sent = _wait_for(settings, 4)
    assert len(sent) == 4, len(sent)  # chat, embeddings, failed chat, chat without content; the apps' own spans not
    for message in sent:
        assert b"sk-vendor-secret-77ab" not in message.value() and token.encode() not in message.value()

    with ChainWorkers(settings, tmp_path) as workers:  # the chain worker checks every emitter signature
        workers.start("w1")
        wait_chained(settings)
        time.sleep(settings.chain.checkpoint_interval_s + 1)
        sink_until_drained(settings, client)
    db = store.database(settings)
    events = [json.loads(r[0])["event"] for r in client.query(f"SELECT payload FROM {db}.evidence ORDER BY ts").result_rows]
    assert len(events) == 4 and client.command(f"SELECT count() FROM {db}.dead_letters") == 0
    by = {(e["gen_ai_operation_name"], e["gen_ai_request_model"], e["actor"]["id"]): e for e in events}
    assert set(by) == {("chat", "gpt-4o", "alice@acme.example"), ("embeddings", "text-embedding-3-small",
                                                                   "alice@acme.example"),
                       ("chat", "fail-500", "refund-bot"), ("chat", "gpt-4o", "bob@acme.example")}, set(by)

    chat = by[("chat", "gpt-4o", "alice@acme.example")]
    assert chat["emitter_id"].startswith("edge/checkout-app-") and chat["emitter_signature"]["kid"]
    assert chat["actor"] == {"type": "workforce", "id": "alice@acme.example", "on_behalf_of": None,
                             "untrusted_label": None}
    assert chat["authz"] == {"role": "support", "scopes": ["service:checkout-assistant", "role:refunds"],
                             "authn_method": "otlp"}
    assert chat["gen_ai_provider_name"] == "openai" and chat["gen_ai_response_model"] == "gpt-4o"
    assert chat["decision"] == "allow" and "observed by OpenTelemetry from sender checkout-app" in chat["decision_reasons"][0]
    # The messages came as log events in other requests, correlated by trace and span id, and classified.
    assert chat["prompt_classification"]["categories"] == ["pii.email"]
    assert chat["response_classification"]["categories"] == ["pii.email"]  # the echo carries it back
    assert chat["content_features"]["prompt_chars"] == len("Refund order 1182 and mail ana@acme.example")
    assert chat["gen_ai_usage_input_tokens"] > 0 and chat["gen_ai_usage_output_tokens"] > 0
    assert len(chat["trace_id"]) == 32 and len(chat["span_id"]) == 16 and chat["latency_us"] > 0

    agent = by[("chat", "fail-500", "refund-bot")]
    assert agent["actor"]["type"] == "agent" and agent["actor"]["on_behalf_of"] == "alice@acme.example"
    assert agent["response_classification"] is None
    assert any(r.startswith("the vendor failed: ") and "500" in r for r in agent["decision_reasons"]), agent

    quiet = by[("chat", "gpt-4o", "bob@acme.example")]  # no content captured: not called public
    assert quiet["prompt_classification"] == {"level": "internal", "categories": [NOT_CAPTURED]}
    assert any("did not capture the messages" in r for r in quiet["decision_reasons"])

    bundle = policy_bundle(settings, chat["policy_version"], client)
    assert bundle is not None and chat["policy_id"] == "otlp-observed"
    assert bundle_problems(chat["policy_version"], bundle["canonical_json"], bundle["source_yaml"]) == []
    assert f"semantic_conventions: {SEMCONV_VERSION}" in bundle["source_yaml"] and "enforced: false" in bundle["source_yaml"]


def _span_request(trace: bytes, span: bytes, *, genai: bool = True, service: str = "billing") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    s = rs.scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = trace, span, "chat gpt-4o"
    s.start_time_unix_nano, s.end_time_unix_nano = 1_796_000_000_000_000_000, 1_796_000_000_250_000_000
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
             "user.id": "carol@acme.example"} if genai else {"http.route": "/health"}
    for key, value in attrs.items():
        a = s.attributes.add()
        a.key, a.value.string_value = key, value
    return req


def test_repeated_spans_are_one_event_and_hostile_requests_are_refused_with_reasons(settings, tmp_path):
    """A span sent twice (a retry; the same span in JSON and protobuf) is one event; a request with
    a non-GenAI span gets OTLP partial success naming it; no token, another sender's token, a wrong
    media type, a body that is not OTLP, an oversized body and a gzip bomb are each refused with the
    status the OTLP specification gives, and none of them makes an event."""
    settings = otlp_settings(settings, tmp_path, content_wait_ms=0, max_body_bytes=64 * 1024)
    token = sender(settings, "billing")
    receiver, served = serve(settings)
    auth = {"Authorization": f"Bearer {token}"}
    trace, span = bytes(range(1, 17)), bytes(range(1, 9))
    with served, httpx.Client(base_url=served.url, timeout=30) as http:
        body = _span_request(trace, span).SerializeToString()
        first = http.post("/v1/traces", content=body, headers={**auth, "Content-Type": "application/x-protobuf"})
        assert first.status_code == 200, first.text
        assert not ExportTraceServiceResponse.FromString(first.content).HasField("partial_success")
        again = http.post("/v1/traces", content=body, headers={**auth, "Content-Type": "application/x-protobuf"})
        assert again.status_code == 200
        as_json = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
                   "scopeSpans": [{"spans": [
                       {"traceId": trace.hex(), "spanId": span.hex(), "name": "chat gpt-4o",
                        "startTimeUnixNano": "1796000000000000000", "endTimeUnixNano": "1796000000250000000",
                        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                       {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}]},
                       {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "GET /health",
                        "attributes": [{"key": "http.route", "value": {"stringValue": "/health"}}]}]}]}]}
        mixed = http.post("/v1/traces", json=as_json, headers=auth)
        assert mixed.status_code == 200 and mixed.headers["content-type"].startswith("application/json")
        partial = mixed.json()["partialSuccess"]
        assert partial["rejectedSpans"] == "1" and "not GenAI operations" in partial["errorMessage"], partial

        def refused(status: int, **kw) -> str:
            r = http.post("/v1/traces", **kw)
            assert r.status_code == status, (status, r.status_code, r.text)
            return r.text

        assert "sender token" in refused(401, content=body, headers={"Content-Type": "application/x-protobuf"})
        other = sender(settings, "someone-else")
        time.sleep(2.1)  # the senders file is re-read every 2 s
        assert "sender token" in refused(401, content=body, headers={"Authorization": "Bearer aiot_" + "A" * 43,
                                                                     "Content-Type": "application/x-protobuf"})
        refused(401, content=body, headers={"Authorization": f"Basic {token}", "Content-Type": "application/x-protobuf"})
        refused(415, content=body, headers={**auth, "Content-Type": "text/plain"})
        assert "not a protobuf" in refused(400, content=b"\xff\xff\xff\xff", headers={**auth, "Content-Type": "application/x-protobuf"})
        assert "not hex" in refused(400, json={"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]},
                                    headers=auth)
        refused(400, content=b"[1, 2", headers={**auth, "Content-Type": "application/json"})
        refused(413, content=b"\0" * (65 * 1024), headers={**auth, "Content-Type": "application/x-protobuf"})
        import gzip

        bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
        assert len(bomb) < 64 * 1024
        assert "decompressed" in refused(413, content=bomb, headers={**auth, "Content-Type": "application/x-protobuf",
                                                                      "Content-Encoding": "gzip"})
        refused(400, content=b"not gzip", headers={**auth, "Content-Type": "application/x-protobuf",
                                                   "Content-Encoding": "gzip"})
        # The same span from another sender is that sender's event (a sender cannot pre-empt another's spans).
        theirs = http.post("/v1/traces", content=body, headers={"Authorization": f"Bearer {other}",
                                                                "Content-Type": "application/x-protobuf"})
        assert theirs.status_code == 200
        sent = _wait_for(settings, 2, timeout_s=10)
        time.sleep(1)
        sent = read_topic(settings, settings.kafka.requests_topic)
    assert len(sent) == 2, len(sent)  # one for billing's span (sent three times), one for someone-else's
    assert receiver.seen.path.exists() and len(receiver.seen) == 2
    restarted = serve(settings)[0]  # a receiver started anew remembers what was recorded
    assert len(restarted.seen) == 2


@pytest.mark.fault
def test_with_the_broker_away_the_sender_is_told_to_retry_and_its_retry_makes_one_event(tmp_path, chdb_dir):
    """The broker killed: a span is answered 503 with Retry-After (OTLP's retryable answer), and so
    is the sender's next attempt, which waits for the first rather than sending it twice. The
    broker back, the attempt after is answered 200 and the topic holds the span once."""
    import os
    import signal

    from tests.integration.support import own_broker

    with own_broker(tmp_path, chdb_dir, name="otlp") as (kafka, settings):
        settings = otlp_settings(settings, tmp_path, content_wait_ms=0, delivery_timeout_s=2.0, retry_after_s=3)
        token = sender(settings, "billing")
        receiver, served = serve(settings)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"}
        with served, httpx.Client(base_url=served.url, timeout=30) as http:
            warm = _span_request(bytes([9] * 16), bytes([9] * 8)).SerializeToString()
            assert http.post("/v1/traces", content=warm, headers=headers).status_code == 200
            os.kill(kafka.pid(), signal.SIGKILL)
            body = _span_request(bytes([7] * 16), bytes([7] * 8)).SerializeToString()
            for _ in range(2):
                away = http.post("/v1/traces", content=body, headers=headers)
                assert away.status_code == 503 and away.headers["retry-after"] == "3", away.text
            kafka.up()
            deadline = time.monotonic() + 90
            while (back := http.post("/v1/traces", content=body, headers=headers)).status_code != 200:
                assert back.status_code == 503 and time.monotonic() < deadline, back.text
                time.sleep(1)
            got = _wait_for(settings, 2, timeout_s=30)
            time.sleep(2)
            got = read_topic(settings, settings.kafka.requests_topic)
        assert len(got) == 2, len(got)  # the warm-up span and the one sent four times, once
        assert len({m.value() for m in got}) == 2


def test_the_five_minute_walkthrough_runs_as_written(tmp_path):
    """docs/otlp.md's "Five minutes" block, run by bash as written (with this test's ports, state and HOME)."""
    from tests.integration.support import free_port_pair, run_walkthrough

    vendor, receiver = free_port_pair(30000, 31000), free_port_pair(31000, 32000)
    run = run_walkthrough(tmp_path, "otlp.md", {"18999": str(vendor), "4318": str(receiver)},
                          {"AIAUDIT_OTLP__PORT": str(receiver)}, drop_env=("AIAUDIT_", "OTEL_", "OPENAI_"))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "echo: Where is my refund?" in run.stdout, run.stdout[-3000:]  # the app's call went through
    assert "ana@example.com" in run.stdout and "confidential" in run.stdout, run.stdout[-3000:]  # its record, classified
    assert "otlp-receiver+sha256." in run.stdout  # the policy it names, published
