"""LiteLLM's logging payload as a contract event, and its config as a policy bundle (pure): the
identity LiteLLM authenticated and nothing a caller claims, refusals as denials naming what refused,
secrets stripped from the bundle, and hostile payloads bounded or refused, never copied."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import yaml

from aiaudit.pipeline import contract
from aiaudit.pipeline.gateway.classify import Classifier
from aiaudit.pipeline.gateway.policy import bundle_problems
from aiaudit.pipeline.litellm.mapping import (
    KEPT,
    STRIPPED,
    actor_of,
    config_policy,
    decision_of,
    event_of,
    slim,
    strip_secrets,
)

POLICY = config_policy({"model_list": []}, "litellm-proxy", "1.108.7")


def payload(**over):
    base = {
        "litellm_call_id": "c0ffee00-0000-4000-8000-000000000001", "status": "success", "call_type": "acompletion",
        "custom_llm_provider": "azure", "model": "azure/gpt-4o-prod", "model_group": "gpt-4o",
        "startTime": 1796449759.5, "endTime": 1796449760.0, "prompt_tokens": 12, "completion_tokens": 7,
        "end_user": "customer-9",
        "metadata": {"user_api_key_hash": "ab" * 32, "user_api_key_alias": "ci-key", "user_api_key_user_id": "bob",
                     "user_api_key_team_id": "risk", "user_api_key_org_id": "acme", "applied_guardrails": ["pii"],
                     "requester_metadata": {"headers": {"authorization": "Bearer sk-live-123"}}},
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "mail bob@acme.example"}]}],
        "response": {"model": "gpt-4o-2024-08-06", "choices": [{"message": {"content": "done"}}]},
    }
    base.update(over)
    return base


def event(p, **kw):
    ev = event_of(p, policy=POLICY, classifier=Classifier(), retention_scope="standard", **kw)
    contract.encode(ev | {"emitter_id": "litellm-x", "emitter_seq": 0, "emitter_signature": None}, max_bytes=262144)
    return ev


def test_an_answered_request_names_who_what_and_under_which_config():
    ev = event(payload(), user_role="internal_user")
    assert ev["event_id"] == "c0ffee00-0000-4000-8000-000000000001"
    assert ev["occurred_at"] == datetime.fromtimestamp(1796449759.5, timezone.utc)
    assert ev["actor"] == {"type": "workforce", "id": "bob", "on_behalf_of": None, "untrusted_label": "customer-9"}
    assert ev["authz"] == {"role": "internal_user", "scopes": ["team:risk", "org:acme", "key_alias:ci-key"],
                           "authn_method": "litellm"}
    assert (ev["gen_ai_provider_name"], ev["gen_ai_request_model"], ev["gen_ai_response_model"]) == (
        "azure.ai.openai", "gpt-4o", "gpt-4o-2024-08-06")
    assert ev["gen_ai_operation_name"] == "chat" and ev["route"] == "gpt-4o" and ev["latency_us"] == 500_000
    assert ev["prompt_classification"]["categories"] == ["pii.email"]
    assert ev["decision"] == "allow" and ev["decision_reasons"] == ["allowed by the LiteLLM proxy (guardrails run: pii)"]
    assert ev["policy_version"] == POLICY.version and ev["prompt_commitment"] is None
    assert "sk-live-123" not in repr(ev) and "authorization" not in repr(ev)  # headers are never read


def test_identities_the_key_the_master_key_and_a_caller_refused_at_the_door():
    key_only = {"user_api_key_hash": "cd" * 32, "user_api_key_alias": None}
    assert actor_of(key_only, None, None).id == "litellm-key:" + "cd" * 8
    master = {"user_api_key_hash": "litellm_proxy_master_key", "user_api_key_user_id": "default_user_id"}
    assert actor_of(master, "x", None).id == "litellm:master-key"
    refused = actor_of({"user_api_key_hash": "ef" * 32, "user_api_key_user_id": "mallory"}, None, None,
                       authenticated=False)
    assert (refused.id, refused.untrusted_label, refused.scopes) == ("litellm:unauthenticated", "key-sha256:" + "ef" * 8, ())
    assert actor_of({}, None, None).id == "litellm:unauthenticated"


@pytest.mark.parametrize(("error", "decision", "reason"), [
    ({"error_class": "GuardrailRaisedException", "error_message": "Guardrail raised an exception, Guardrail: "
      "no-falcon, Message: no"}, "deny", "guardrail no-falcon blocked the request"),
    ({"error_class": "BlockedPiiEntityError", "error_message": "Blocked entity detected: EMAIL by Guardrail: "
      "presidio. This entity"}, "deny", "guardrail presidio blocked the request"),
    ({"error_class": "BudgetExceededError", "error_message": "Budget has been exceeded"}, "deny",
     "the LiteLLM proxy refused the request (budget"),
    ({"error_class": "ProxyException", "error_code": "429", "error_message": "max parallel requests"}, "deny",
     "the LiteLLM proxy refused the request (rate limit"),
    ({"error_class": "RateLimitError", "error_code": "429", "llm_provider": "openai", "error_message": "slow down"},
     "allow", "the vendor failed (429): RateLimitError: slow down"),
    ({"error_class": "InternalServerError", "error_code": "500", "llm_provider": "openai", "error_message": "boom"},
     "allow", "the vendor failed (500)"),
])
def test_refusals_are_denials_naming_what_refused_and_vendor_failures_are_not(error, decision, reason):
    ev = event(payload(status="failure", error_information=error, response={}, completion_tokens=0))
    assert ev["decision"] == decision
    assert any(r.startswith(reason) for r in ev["decision_reasons"]), ev["decision_reasons"]
    assert ev["response_classification"] is None  # nothing answered


def test_hostile_payloads_are_bounded_or_refused_never_copied():
    huge = "A" * 10_000
    ev = event(payload(model_group=huge, end_user=huge, metadata={"user_api_key_user_id": huge, "applied_guardrails": 7},
                       messages="x" * (3 << 20), response=["not", "a", "dict"], prompt_tokens=-5,
                       call_type=huge, custom_llm_provider=None, model=None, startTime="yesterday", endTime=None))
    assert len(ev["actor"]["id"]) == 256 and len(ev["actor"]["untrusted_label"]) == 256
    assert len(ev["route"]) == 256 and ev["gen_ai_usage_input_tokens"] == 0 and ev["latency_us"] == 0
    assert ev["content_features"]["prompt_chars"] == 1 << 20  # what is classified is bounded
    assert len(ev["gen_ai_operation_name"]) == 64 and ev["gen_ai_provider_name"] == "unknown"
    odd = event(payload(metadata="not a dict", messages={"content": {"deep": ["x"]}}, litellm_call_id=None, id=None))
    assert odd["actor"]["id"] == "litellm:unauthenticated" and odd["event_id"] == "unknown"
    with pytest.raises((TypeError, ValueError)):
        event(payload(prompt_tokens="many"))  # refused (the callback counts it as invalid), never half-made


def test_secrets_are_stripped_and_the_bundle_checks_against_its_version():
    config = {"model_list": [{"model_name": "gpt-4o", "litellm_params": {
        "api_key": "sk-live-vendor", "api_base": "https://user:pw@vendor.example/v1", "timeout": 30.5,
        "aws_secret_access_key": "wJalr", "vertex_credentials": "{...}", "rpm": 100}}],
        "general_settings": {"master_key": "sk-master", "database_url": "postgresql://u:dbpass@db:5432/l",
                             "alerting": ["slack"], "store_model_in_db": True},
        "environment_variables": {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"},
        "litellm_settings": {"callbacks": "aiaudit_callback.aiaudit", "api_key_env": "os.environ/OPENAI_API_KEY"}}
    stripped = strip_secrets(config)
    params = stripped["model_list"][0]["litellm_params"]
    assert params["api_key"] == params["aws_secret_access_key"] == params["vertex_credentials"] == STRIPPED
    assert params["api_base"] == f"https://{STRIPPED}@vendor.example/v1" and params["timeout"] == "30.5"
    assert params["rpm"] == 100 and stripped["general_settings"]["store_model_in_db"] is True
    assert stripped["general_settings"]["database_url"] == f"postgresql://{STRIPPED}@db:5432/l"
    assert stripped["litellm_settings"]["api_key_env"] == "os.environ/OPENAI_API_KEY"  # where, not what
    policy = config_policy(config, "litellm-proxy", "1.108.7")
    for secret in ("sk-live-vendor", "sk-master", "dbpass", "wJalr", "pw@"):
        assert secret not in policy.source_yaml and secret.encode() not in policy.canonical_json
    assert policy.version.startswith("litellm-config+sha256.")
    assert bundle_problems(policy.version, policy.canonical_json.decode(), policy.source_yaml) == []
    assert config_policy(config, "litellm-proxy", "1.108.7").version == policy.version  # the same config, the same version
    assert config_policy({**config, "router_settings": {"x": 1}}, "p", "1.108.7").version != policy.version

    # A store writer who edits what is shown is caught: the YAML is not the hashed document.
    doc = yaml.safe_load(policy.source_yaml)
    doc["config"]["general_settings"]["alerting"] = []
    assert bundle_problems(policy.version, policy.canonical_json.decode(), yaml.safe_dump(doc)) == [
        "the stored YAML is not the document its canonical JSON holds"]
    assert bundle_problems(policy.version, policy.canonical_json.decode(), "{unclosed")[0].startswith(
        "the stored YAML does not parse")
    assert bundle_problems(policy.version, policy.canonical_json.decode().replace("slack", "teams"),
                           policy.source_yaml)[0].startswith("its canonical JSON hashes to")


def test_decision_of_a_success_names_the_guardrails_that_ran_and_nothing_else():
    decision, reasons, refused_by = decision_of({"status": "success", "metadata": {}})
    assert (decision, reasons, refused_by) == ("allow", ["allowed by the LiteLLM proxy"], None)


def test_what_is_taken_at_the_call_is_all_the_event_needs_and_no_more():
    full = payload(hidden_params={"api_key": "sk-never"}, model_map_information={"x": 1}, response_cost=0.1)
    kept, prompt, response = slim(full)
    assert set(kept) <= set(KEPT) | {"response"} and kept["response"] == {"model": "gpt-4o-2024-08-06"}
    assert "hidden_params" not in kept and "messages" not in kept
    assert (prompt, response) == ("be brief\nmail bob@acme.example", "done")
    assert event(kept, texts=(prompt, response)) == event(full)  # the same event from what was kept
    failed = payload(status="failure", response={"model": "m", "choices": [{"message": {"content": "partial"}}]})
    assert slim(failed)[2] == ""  # nothing answered: no response text is held
