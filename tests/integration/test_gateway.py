"""The gateway with the official `openai` client, a fake upstream, and the real broker.

Each test reads back the Avro events the gateway emitted to the requests topic.
"""

from __future__ import annotations

import base64
import time

import httpx
import openai
import orjson
import pytest

from aiaudit.pipeline import metrics
from aiaudit.pipeline.contract.subject_keys import SubjectKeys
from tests.integration.gateway_support import POLICY, GatewayUnderTest, RunningGateway
from tests.integration.support import free_port_pair, metric_value, read_topic, scrape

pytestmark = pytest.mark.integration


@pytest.fixture
def gw(settings, tmp_path):
    with RunningGateway(settings, tmp_path) as running:
        yield running


def opened_content(settings, value: bytes) -> dict:
    """A content-topic message opened with the keys it is sealed under (it is never plaintext)."""
    doc = orjson.loads(value)
    assert set(doc) == {"v", "event_id", "retention_scope", "expires_at", "subjects", "key_ids", "sealed"}
    opened = SubjectKeys(settings.content_keys_dir()).open(doc["event_id"], doc["subjects"], doc["key_ids"],
                                                           doc["sealed"])
    assert isinstance(opened, dict), opened
    return opened


def chat(client: openai.OpenAI, text: str, label: str, model: str = "gpt-4o") -> str:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], user=label)
    return reply.choices[0].message.content or ""


def test_allowed_request_is_answered_and_recorded_with_the_authenticated_identity(gw: GatewayUnderTest):
    reply = chat(gw.client(), "summarise our quarterly plan", "mallory@evil")
    assert reply == "echo: summarise our quarterly plan"
    ev = gw.event("mallory@evil")
    # The caller's `user` is a label only: the identity is the API key's principal.
    assert ev["actor"] == {"type": "workforce", "id": "alice@itest", "on_behalf_of": None, "untrusted_label": "mallory@evil"}
    assert ev["authz"] == {"role": "engineer", "scopes": [], "authn_method": "api_key"}
    assert ev["decision"] == "allow" and ev["route"] == "default" and ev["gen_ai_provider_name"] == "openai"
    assert ev["gen_ai_request_model"] == "gpt-4o" and ev["gen_ai_response_model"] == "gpt-4o"
    assert ev["prompt_classification"] == {"level": "internal", "categories": []}
    assert ev["response_classification"] == {"level": "internal", "categories": []}
    policy = gw.app.state.gateway.policies.current
    assert ev["policy_id"] == "itest" and ev["policy_version"] == policy.version and policy.version.startswith("1+sha256.")
    assert ev["gen_ai_usage_input_tokens"] == 4 and ev["gen_ai_usage_output_tokens"] == 5
    assert ev["content_features"]["prompt_chars"] == len("summarise our quarterly plan")
    assert len(ev["prompt_commitment"]) == 64 and len(ev["response_commitment"]) == 64  # route keeps commitments
    # The commitment key went to the content topic, sealed, without the content (route rule: commitments).
    kept = [m for m in read_topic(gw.settings, gw.settings.kafka.content_topic)
            if m.key().decode() == ev["event_id"]]
    assert len(kept) == 1
    opened = opened_content(gw.settings, kept[0].value())
    assert opened["prompt"] is None and len(base64.b64decode(opened["key_b64"])) == 32
    # The upstream saw the authenticated model and the gateway's own key handling, not the caller's key.
    assert gw.upstream.received[-1]["headers"].get("authorization") is None


def test_every_response_carries_a_request_id_that_finds_its_record(gw: GatewayUnderTest):
    allowed = gw.client().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], user="rid-1")
    rid = allowed.headers["x-request-id"]
    assert gw.event("rid-1")["event_id"] == rid
    with pytest.raises(openai.PermissionDeniedError) as denied:
        chat(gw.client(), "debug this: AKIAIOSFODNN7EXAMPLE", "rid-2")
    assert denied.value.response.headers["x-request-id"] == gw.event("rid-2")["event_id"]
    with pytest.raises(openai.AuthenticationError) as refused:  # no record: still an id for the log line
        chat(gw.client(token="aiak_not-a-key"), "hi", "rid-3")
    other = refused.value.response.headers["x-request-id"]
    assert len(other) == 36 and other != rid
    assert httpx.get(f"{gw.url}/healthz").headers["x-request-id"]


def test_secret_in_prompt_is_denied_and_recorded_without_reaching_the_vendor(gw: GatewayUnderTest):
    with pytest.raises(openai.PermissionDeniedError, match="secret.aws_key"):
        chat(gw.client(), "debug this: AKIAIOSFODNN7EXAMPLE", "deny-1")
    assert gw.upstream.received == []
    ev = gw.event("deny-1")
    assert ev["decision"] == "deny" and ev["response_classification"] is None
    assert ev["prompt_classification"] == {"level": "restricted", "categories": ["secret.aws_key"]}
    assert any("secret.aws_key" in r for r in ev["decision_reasons"])


def test_pii_is_redacted_before_the_vendor_sees_it(gw: GatewayUnderTest):
    reply = chat(gw.client(), "email bob@example.com the report", "redact-1")
    assert reply == "echo: email [REDACTED:pii.email] the report"
    sent = gw.upstream.received[-1]["body"]["messages"][-1]["content"]
    assert "bob@example.com" not in sent
    ev = gw.event("redact-1")
    assert ev["decision"] == "redact" and ev["decision_reasons"] == ["pii.email redacted"]
    assert ev["prompt_classification"]["categories"] == ["pii.email"]  # what the caller sent, before redaction


def test_restricted_data_is_rerouted_to_a_vendor_allowed_to_receive_it(gw: GatewayUnderTest):
    reply = chat(gw.client(), "status of project falcon?", "reroute-1")
    assert reply == "echo: status of project falcon?"
    assert gw.upstream.received[-1]["body"]["model"] == "local-model"
    ev = gw.event("reroute-1")
    # One vendor identity: the record names the vendor as the policy does (not the product behind it).
    assert ev["decision"] == "reroute" and ev["gen_ai_provider_name"] == "local"
    assert ev["gen_ai_request_model"] == "local-model"
    assert ev["prompt_classification"] == {"level": "restricted", "categories": ["org.falcon"]}


def test_role_and_model_outside_the_route_are_denied(gw: GatewayUnderTest):
    with pytest.raises(openai.PermissionDeniedError, match="role 'support'"):
        chat(gw.client("sam@itest"), "hello", "role-1")
    with pytest.raises(openai.PermissionDeniedError, match="not allowed on route"):
        chat(gw.client(), "hello", "model-1", model="claude-3-opus")
    assert gw.event("role-1")["actor"]["id"] == "sam@itest"
    assert gw.event("model-1")["decision"] == "deny"


def test_response_classification_sees_pii_in_the_answer(gw: GatewayUnderTest):
    chat(gw.client(), "please leak something", "leak-1")
    ev = gw.event("leak-1")
    assert ev["response_classification"] == {"level": "confidential", "categories": ["pii.email"]}
    assert ev["content_features"]["response_pii_hits"] == 1


def test_streaming_passes_chunks_through_and_records_the_whole_answer(gw: GatewayUnderTest):
    stream = gw.client().chat.completions.create(model="gpt-4o", stream=True, user="stream-1",
                                                 messages=[{"role": "user", "content": "one two three"}])
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 4 and "".join(pieces) == "echo: one two three"
    ev = gw.event("stream-1")
    assert ev["decision"] == "allow" and ev["content_features"]["response_chars"] == len("echo: one two three")
    assert ev["gen_ai_usage_output_tokens"] == 4 and ev["response_classification"]["level"] == "internal"


def test_embeddings_and_model_listing(gw: GatewayUnderTest):
    client = gw.client()
    out = client.embeddings.create(model="gpt-4o", input=["a", "b"], user="emb-1")
    assert len(out.data) == 2
    ev = gw.event("emb-1")
    assert ev["gen_ai_operation_name"] == "embeddings" and ev["gen_ai_usage_input_tokens"] == 6
    ids = {m.id for m in client.models.list()}
    assert "openai/gpt-*" in ids


def test_bad_unknown_and_expired_credentials_are_refused_without_an_event(gw: GatewayUnderTest):
    before = len(gw.events())
    with pytest.raises(openai.AuthenticationError):
        chat(gw.client(token="aiak_not-a-key"), "hi", "auth-1")
    with pytest.raises(openai.AuthenticationError, match="expired"):
        chat(gw.client(token=gw.token(expires_in=-60)), "hi", "auth-2")
    with pytest.raises(openai.AuthenticationError, match="audience"):
        chat(gw.client(token=gw.token(audience="someone-else")), "hi", "auth-3")
    with pytest.raises(openai.AuthenticationError, match="unknown key"):
        chat(gw.client(token=gw.token(kid="forged")), "hi", "auth-4")
    forged = gw.token()[:-4] + ("AAAA" if not gw.token().endswith("AAAA") else "BBBB")
    with pytest.raises(openai.AuthenticationError):
        chat(gw.client(token=forged), "hi", "auth-5")
    assert len(gw.events()) == before


def test_oidc_agent_token_records_the_agent_and_the_person_it_acts_for(gw: GatewayUnderTest):
    token = gw.token(sub="dana@itest", role="engineer", act={"sub": "agent:planner"}, scope="chat embeddings")
    chat(gw.client(token=token), "plan my week", "oidc-1")
    ev = gw.event("oidc-1")
    assert ev["actor"]["type"] == "agent" and ev["actor"]["id"] == "agent:planner"
    assert ev["actor"]["on_behalf_of"] == "dana@itest"
    assert ev["authz"] == {"role": "engineer", "scopes": ["chat", "embeddings"], "authn_method": "oidc"}
    # An API-key agent says whom it acts for in its key entry.
    chat(gw.client("agent:itest-bot"), "file the invoices", "agent-1")
    ev = gw.event("agent-1")
    assert ev["actor"]["type"] == "agent" and ev["actor"]["on_behalf_of"] == "alice@itest"


def test_failing_and_hanging_upstreams_end_in_bounded_time_and_are_recorded(gw: GatewayUnderTest):
    with pytest.raises(openai.InternalServerError) as failed:
        chat(gw.client(), "hi", "fail-1", model="fail-500")
    ev = gw.event("fail-1")
    assert ev["decision"] == "allow"
    assert any(r.startswith("upstream status 500") and "upstream exploded" in r for r in ev["decision_reasons"])
    # The caller gets a generic error with the request id; the vendor's own words stay in the record.
    assert "upstream exploded" not in str(failed.value) and ev["event_id"] in str(failed.value)
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as err:
        chat(gw.client(), "hi", "hang-1", model="hang")
    assert err.value.status_code == 504 and time.monotonic() - started < 10  # the vendor's timeout is 1 s
    assert "127.0.0.1" not in str(err.value) and "Timeout" not in str(err.value)  # no internals to the caller
    ev = gw.event("hang-1")
    assert any("timed out" in r for r in ev["decision_reasons"]) and ev["response_classification"] is None
    # A stream that stalls mid-way ends with an error event instead of [DONE], and is recorded.
    stream = gw.client().chat.completions.create(model="stall", stream=True, user="stall-1",
                                                 messages=[{"role": "user", "content": "one two"}])
    with pytest.raises(openai.APIError):
        list(stream)
    ev = gw.event("stall-1")
    assert any("stalled" in r for r in ev["decision_reasons"])


def test_a_client_that_hangs_up_mid_stream_still_leaves_its_event(gw: GatewayUnderTest):
    """The vendor had the prompt: the request is recorded even though the caller went away."""
    body = {"model": "stall", "stream": True, "user": "hangup-1", "messages": [{"role": "user", "content": "one two"}]}
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", f"{gw.url}/v1/chat/completions", json=body,
                           headers={"authorization": f"Bearer {gw.keys['alice@itest']}"}) as response:
            assert response.status_code == 200
            first = next(response.iter_lines())
            assert first.startswith("data: ")
        # leaving the block closes the connection while the vendor's stream is still open
    ev = gw.event("hangup-1")
    assert any(r.startswith("client_disconnected after 1 chunk(s)") for r in ev["decision_reasons"]), ev
    assert ev["decision"] == "allow" and ev["gen_ai_request_model"] == "stall"


def test_hostile_request_shapes_are_refused_before_any_vendor_call(gw: GatewayUnderTest):
    before = len(gw.upstream.received)
    key = {"authorization": f"Bearer {gw.keys['alice@itest']}"}
    cases = [({"model": "x" * 5000, "messages": [{"role": "user", "content": "hi"}]}, 400, "invalid_model"),
             ({"model": "gpt-4o/../../secret", "messages": [{"role": "user", "content": "hi"}]}, 400, "invalid_model"),
             ({"model": "gpt-4o", "stream": "false", "messages": [{"role": "user", "content": "hi"}]}, 400, "`stream`")]
    for body, status, why in cases:
        answer = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=key)
        assert answer.status_code == status and why in answer.text, (body, answer.text)
    # A field the gateway does not know: refused with its name, and recorded as a denied request.
    odd = httpx.post(f"{gw.url}/v1/chat/completions", headers=key, json={
        "model": "gpt-4o", "user": "shape-1", "messages": [{"role": "user", "content": "hi"}], "smuggle": "x"})
    assert odd.status_code == 400 and "smuggle: is not a field the gateway forwards" in odd.text
    ev = gw.event("shape-1")
    assert ev["decision"] == "deny" and ev["decision_reasons"][0].startswith("request body: smuggle")
    # A secret in tool-call arguments is seen, and the policy's deny applies.
    hidden = httpx.post(f"{gw.url}/v1/chat/completions", headers=key, json={
        "model": "gpt-4o", "user": "shape-2", "messages": [
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {
                "name": "f", "arguments": '{"k": "AKIAIOSFODNN7EXAMPLE"}'}}]},
            {"role": "user", "content": "go on"}]})
    assert hidden.status_code == 403 and gw.event("shape-2")["prompt_classification"]["categories"] == ["secret.aws_key"]
    long_route = httpx.post(f"{gw.url}/r/{'r' * 5000}/v1/chat/completions", headers=key,
                            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert long_route.status_code == 404
    assert len(gw.upstream.received) == before  # no vendor saw any of them


def test_kept_content_is_what_policy_lets_be_kept(gw: GatewayUnderTest):
    """On a `content: full` route the redacted text is kept, not the original; a denied prompt not at all."""
    chat(gw.client(route="open"), "mail carol@example.com the figures", "keep-1")
    with pytest.raises(openai.PermissionDeniedError):
        chat(gw.client(route="open"), "use AKIAIOSFODNN7EXAMPLE", "keep-2")
    redacted, denied = gw.event("keep-1"), gw.event("keep-2")  # (their content kept and sent, too)
    kept = {m.key().decode(): opened_content(gw.settings, m.value())
            for m in read_topic(gw.settings, gw.settings.kafka.content_topic)}
    assert kept[redacted["event_id"]]["prompt"] == "mail [REDACTED:pii.email] the figures"
    assert denied["event_id"] not in kept and denied["prompt_commitment"] is None
    assert not any(b"AKIAIOSFODNN7EXAMPLE" in m.value() or b"carol@example.com" in m.value()
                   for m in read_topic(gw.settings, gw.settings.kafka.content_topic))


def test_a_vendor_redirect_is_not_followed_and_the_prompt_goes_nowhere_else(gw: GatewayUnderTest):
    with pytest.raises(openai.APIStatusError) as err:
        chat(gw.client(), "the secret plan", "redir-1", model="redirect")
    assert err.value.status_code == 502 and gw.upstream.elsewhere == []
    ev = gw.event("redir-1")
    assert any(r.startswith("upstream status 307") for r in ev["decision_reasons"])


def test_bad_policy_file_never_replaces_the_good_one_and_every_bundle_is_published(gw: GatewayUnderTest):
    gateway = gw.app.state.gateway
    first = gateway.policies.current.version
    gw.policy_file.write_text(POLICY.replace("roles: [engineer, agent-role]", "roles: engineer-without-list"))
    deadline = time.monotonic() + 10
    while gateway.policies.last_error is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "routes.default.roles" in (gateway.policies.last_error or "")
    assert gateway.policies.current.version == first
    answer = httpx.get(f"{gw.url}/healthz")
    health = answer.json()
    assert health["policy_version"] == first and "routes.default.roles" in health["policy_reload_error"]
    assert health["status"] == "degraded" and answer.status_code == 200  # serving, under the last good policy
    chat(gw.client(), "still served", "policy-1")
    assert gw.event("policy-1")["policy_version"] == first
    # A good new version takes over, and both bundles can be fetched from the policies topic.
    gw.policy_file.write_text(POLICY.replace('version: "1"', 'version: "2"'))
    while gateway.policies.current.version == first and time.monotonic() < deadline + 10:
        time.sleep(0.1)
    second = gateway.policies.current.version
    assert second.startswith("2+sha256.")
    assert httpx.get(f"{gw.url}/healthz").json()["status"] == "ok"  # the reload error is over
    chat(gw.client(), "new rules", "policy-2")
    assert gw.event("policy-2")["policy_version"] == second
    published = {m.key().decode() for m in read_topic(gw.settings, gw.settings.kafka.policies_topic, partitions=1)}
    assert {first, second} <= published


def test_the_gateway_counts_each_decision_it_recorded_on_metrics(gw: GatewayUnderTest):
    port = free_port_pair()
    metrics.serve(port)  # the gateway runs in this process: its registry, served as `gateway serve --metrics-port` does
    before = scrape(port)
    chat(gw.client(), "summarise the plan", "m-allow")
    chat(gw.client(), "email bob@example.com the report", "m-redact")
    with pytest.raises(openai.PermissionDeniedError):
        chat(gw.client(), "debug this: AKIAIOSFODNN7EXAMPLE", "m-deny")
    after = scrape(port)
    counted = {d: metric_value(after, "aiaudit_gateway_requests_total", decision=d)
               - metric_value(before, "aiaudit_gateway_requests_total", decision=d)
               for d in ("allow", "redact", "deny", "reroute")}
    assert counted == {"allow": 1, "redact": 1, "deny": 1, "reroute": 0}
    assert [gw.event(label)["decision"] for label in ("m-allow", "m-redact", "m-deny")] == ["allow", "redact", "deny"]
    assert metric_value(after, "aiaudit_gateway_unrecorded_total", what="event") == metric_value(
        before, "aiaudit_gateway_unrecorded_total", what="event")
