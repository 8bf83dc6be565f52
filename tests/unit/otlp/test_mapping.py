"""GenAI spans and their content as contract events (pipeline/otlp/mapping.py)."""

from __future__ import annotations

import orjson
import pytest

from aiaudit.pipeline import contract
from aiaudit.pipeline.gateway.classify import Classifier
from aiaudit.pipeline.gateway.policy import bundle_problems
from aiaudit.pipeline.otlp.mapping import (
    NOT_CAPTURED,
    Content,
    content_of_attributes,
    content_of_log,
    event_id,
    event_of,
    is_genai,
    messages_text,
    receiver_policy,
)
from aiaudit.pipeline.otlp.wire import LogEvent, Span

POLICY = receiver_policy("otlp-observed", 1500)
T, S = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


def _span(attributes: dict, *, status: int = 0, resource: dict | None = None, trace: str = T, span: str = S) -> Span:
    return Span(trace, span, "chat gpt-4o", 1_796_000_000_000_000_000, 1_796_000_000_250_000_000, status, "",
                attributes, resource if resource is not None else {"service.name": "shop"}, "scope")


def _event(span: Span, content: Content | None = None) -> dict:
    return event_of(span, content, sender="shop-app", policy=POLICY, classifier=Classifier(), retention_scope="standard")


def _valid(event: dict) -> dict:
    stamped = {**event, "emitter_id": "otlp/shop-app-1", "emitter_seq": 0, "emitter_signature": None}
    contract.encode(stamped, max_bytes=1 << 20)  # the contract's own check: raises on any field out of shape
    return stamped


def test_a_chat_span_with_its_content_is_a_valid_event_with_the_users_identity():
    span = _span({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                  "gen_ai.response.model": "gpt-4o-2024", "gen_ai.usage.input_tokens": 12,
                  "gen_ai.usage.output_tokens": 3, "user.id": "alice@acme.example", "user.roles": ["support", "refunds"],
                  "gen_ai.input.messages": orjson.dumps([{"role": "user", "parts": [
                      {"type": "text", "content": "mail bob@acme.example"}]}]).decode()})
    event = _valid(_event(span, content_of_attributes(span.attributes)))
    assert event["actor"] == {"type": "workforce", "id": "alice@acme.example", "on_behalf_of": None,
                              "untrusted_label": None}
    assert event["authz"] == {"role": "support", "scopes": ["service:shop", "role:refunds"], "authn_method": "otlp"}
    assert event["prompt_classification"]["categories"] == ["pii.email"]
    assert event["gen_ai_usage_input_tokens"] == 12 and event["latency_us"] == 250_000
    assert event["trace_id"] == T and event["span_id"] == S and event["decision"] == "allow"
    assert event["event_id"] == event_id("shop-app", T, S) and event["policy_version"] == POLICY.version
    assert event["occurred_at"].year == 2026


def test_identity_an_agent_for_a_user_and_a_service_when_no_one_is_named():
    agent = _event(_span({"gen_ai.operation.name": "chat", "gen_ai.agent.id": "refund-bot",
                          "gen_ai.agent.name": "Refunds", "enduser.id": "carol"}))
    assert agent["actor"] == {"type": "agent", "id": "refund-bot", "on_behalf_of": "carol", "untrusted_label": "Refunds"}
    nobody = _event(_span({"gen_ai.operation.name": "embeddings"}, resource={}))
    assert nobody["actor"]["type"] == "service" and nobody["actor"]["id"] == "otlp:shop-app/unknown_service"
    assert nobody["authz"]["role"] == "unspecified"
    on_resource = _event(_span({"gen_ai.operation.name": "chat"}, resource={"service.name": "s", "user.id": "dan"}))
    assert on_resource["actor"]["id"] == "dan"  # the resource names the user when the span does not


def test_without_content_the_prompt_is_marked_not_captured_never_public():
    event = _valid(_event(_span({"gen_ai.operation.name": "chat"})))
    assert event["prompt_classification"] == {"level": "internal", "categories": [NOT_CAPTURED]}
    assert event["response_classification"] == {"level": "internal", "categories": [NOT_CAPTURED]}
    assert any("did not capture" in r for r in event["decision_reasons"])


def test_a_failed_operation_has_no_response_and_says_why():
    event = _valid(_event(_span({"gen_ai.operation.name": "chat", "error.type": "openai.InternalServerError"},
                                status=2), Content(prompt=["hi"])))
    assert event["response_classification"] is None
    assert event["decision_reasons"][1].startswith("the vendor failed: openai.InternalServerError")


@pytest.mark.parametrize("attributes, trace, span, mapped", [
    ({"gen_ai.operation.name": "chat"}, T, S, True),
    ({"gen_ai.system": "openai"}, T, S, True),  # before 1.37
    ({"http.route": "/"}, T, S, False),
    ({"gen_ai.operation.name": "chat"}, "", S, False),
    ({"gen_ai.operation.name": "chat"}, "0" * 32, S, False),
    ({"gen_ai.operation.name": "chat"}, T, "0" * 16, False),
    ({"gen_ai.operation.name": ""}, T, S, False),
])
def test_only_genai_spans_with_ids_are_mapped(attributes, trace, span, mapped):
    assert is_genai(_span(attributes, trace=trace, span=span)) is mapped


def test_hostile_values_are_cut_to_the_contracts_shape():
    span = _span({"gen_ai.operation.name": "x" * 10_000, "gen_ai.request.model": ["not", "text"],
                  "user.id": "u" * 10_000, "user.roles": [{"a": 1}] * 100, "gen_ai.usage.input_tokens": -5,
                  "gen_ai.usage.output_tokens": "9" * 40, "gen_ai.provider.name": True},
                 resource={"service.name": "s" * 5000})
    event = _valid(_event(span))
    assert len(event["gen_ai_operation_name"]) == 64 and event["gen_ai_request_model"] == "unknown"
    assert len(event["actor"]["id"]) == 256 and event["authz"]["role"] == "unspecified"
    assert event["gen_ai_usage_input_tokens"] == 0 and event["gen_ai_usage_output_tokens"] == 0
    assert event["gen_ai_provider_name"] == "unknown" and len(event["route"]) <= 256
    # times out of range: now, not an error
    odd = Span(T, S, "n", -1, 2**64, 0, "", {"gen_ai.operation.name": "chat"}, {}, "")
    assert _valid(_event(odd))["latency_us"] == 0


def test_messages_of_every_shape_the_conventions_have_used():
    assert messages_text('[{"role": "user", "parts": [{"type": "text", "content": "a"}, {"type": "uri"}]}]') == "a"
    assert messages_text([{"role": "user", "content": "b"}]) == "b"
    assert messages_text({"message": {"role": "assistant", "content": "c"}}) == "c"  # a gen_ai.choice body
    assert messages_text([{"role": "user", "content": [{"type": "text", "text": "d"}]}]) == "d"
    assert messages_text("not json") == "not json" and messages_text(None) == "" and messages_text(42) == ""


def test_content_events_old_and_new():
    details = LogEvent(T, S, "gen_ai.client.inference.operation.details", 0,
                       {"gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "q"}]}],
                        "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "a"}]}],
                        "gen_ai.system_instructions": [{"type": "text", "content": "be brief"}]}, None, {})
    c = content_of_log(details)
    assert c is not None and (c.system, c.prompt, c.response) == (["be brief"], ["q"], ["a"])
    user = content_of_log(LogEvent(T, S, "gen_ai.user.message", 0, {}, {"content": "hello"}, {}))
    assert user is not None and user.prompt == ["hello"]
    choice = content_of_log(LogEvent(T, S, "gen_ai.choice", 0, {}, {"message": {"content": "bye"}}, {}))
    assert choice is not None and choice.response == ["bye"]
    assert content_of_log(LogEvent(T, S, "http.request", 0, {}, "x", {})) is None


def test_event_ids_are_per_sender_and_stable():
    assert event_id("a", T, S) == event_id("a", T, S) != event_id("b", T, S)
    assert event_id("a", T, S) != event_id("a", T, "c" * 16)


def test_the_receivers_policy_bundle_checks_out():
    assert POLICY.version.startswith("otlp-receiver+sha256.")
    assert bundle_problems(POLICY.version, POLICY.canonical_json.decode(), POLICY.source_yaml) == []
    assert receiver_policy("otlp-observed", 0).version != POLICY.version
    assert bundle_problems(POLICY.version, POLICY.canonical_json.decode(), POLICY.source_yaml.replace("1500", "9")) != []
