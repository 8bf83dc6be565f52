"""A LiteLLM proxy request as a contract event, and the proxy's config as a policy bundle (pure).

The request comes from LiteLLM's standard logging payload (`kwargs["standard_logging_object"]`,
the structure LiteLLM hands every logging integration), which this module reads field by field:
nothing it does not name reaches the event. Never copied: headers, API keys, the virtual key
itself (its hash, LiteLLM's own id for it, names the identity), the messages (classified here;
only their classification and content features go into the event).

The identity is the one LiteLLM authenticated: its internal user (a virtual key's user, or what a
custom auth function returned), else the virtual key; the request's `user` field, which the key
holder asserts, is kept as the untrusted label.

A guardrail that blocks a request is a `deny` naming the guardrail; LiteLLM's own budget and rate
enforcement likewise; a vendor failure is an `allow` with the failure as a reason (the policy
allowed the request; the vendor did not answer).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import yaml

from aiaudit.pipeline.gateway.classify import Classifier, content_features
from aiaudit.pipeline.gateway.event import MAX_REASON_CHARS, MAX_REASONS, trace_context
from aiaudit.pipeline.gateway.policy import PROXY_CONFIG_KIND
from aiaudit.pipeline.jcs import canonicalize

DECLARED = "litellm-config"
MAX_TEXT = 1 << 20  # characters of prompt or response classified (the rest is not read)
MAX_FIELD = 256  # characters kept of any identity, model or name from the payload

# LiteLLM's call types as OpenTelemetry gen_ai.operation.name.
OPERATIONS = {
    "completion": "chat", "acompletion": "chat", "text_completion": "text_completion",
    "atext_completion": "text_completion", "embedding": "embeddings", "aembedding": "embeddings",
    "image_generation": "image_generation", "aimage_generation": "image_generation",
    "responses": "chat", "aresponses": "chat", "anthropic_messages": "chat", "generate_content": "generate_content",
    "agenerate_content": "generate_content", "moderation": "moderation", "amoderation": "moderation",
    "transcription": "transcription", "atranscription": "transcription", "speech": "speech", "aspeech": "speech",
    "rerank": "rerank", "arerank": "rerank",
}
# LiteLLM's provider names as OpenTelemetry gen_ai.provider.name (well-known values).
PROVIDERS = {
    "openai": "openai", "text-completion-openai": "openai", "azure": "azure.ai.openai", "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic", "bedrock": "aws.bedrock", "vertex_ai": "gcp.vertex_ai", "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini", "mistral": "mistral_ai", "groq": "groq", "cohere": "cohere", "cohere_chat": "cohere",
    "deepseek": "deepseek", "xai": "x_ai", "perplexity": "perplexity", "watsonx": "ibm.watsonx.ai",
}
# Errors that are LiteLLM's own enforcement (the request was refused, not failed).
REFUSALS = {"GuardrailRaisedException": "guardrail", "BlockedPiiEntityError": "guardrail",
            "ContentPolicyViolationError": "guardrail", "BudgetExceededError": "budget",
            "RateLimitError": "rate limit"}
# What the proxy itself answers (no vendor named) when it refuses a caller.
PROXY_CODES = {"401": "authentication", "403": "authorisation", "429": "rate limit"}
_GUARDRAIL = re.compile(r"Guardrail: ([^,.\s]{1,128})")
MASTER_USER = "default_user_id"  # LiteLLM's user for the master key
SECRET_KEY = re.compile(r"(key|secret|token|password|passwd|credential|auth|private|signature|cookie)", re.I)
_URL_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)
STRIPPED = "[stripped]"


def _text(value: Any, limit: int = MAX_FIELD) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text[:limit] if text else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _content(value: Any) -> str:
    """The text of a message content: a string, or the text parts of a list of parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(p.get("text", "") for p in value if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def prompt_text(messages: Any) -> str:
    """What was sent: every message's text (chat messages, a prompt string, or embedding input)."""
    if isinstance(messages, str):
        return messages[:MAX_TEXT]
    parts: list[str] = []
    if isinstance(messages, list):
        for m in messages:
            parts.append(_content(m.get("content")) if isinstance(m, dict) else str(m) if isinstance(m, str) else "")
    elif isinstance(messages, dict):
        parts.append(_content(messages.get("content") or messages.get("input")))
    return "\n".join(p for p in parts if p)[:MAX_TEXT]


def response_text(response: Any) -> str:
    """What came back: each choice's message text (chat), text (completion), or output text."""
    if isinstance(response, str):
        return response[:MAX_TEXT]
    if not isinstance(response, dict):
        return ""
    parts: list[str] = []
    for choice in _list(response.get("choices")):
        if isinstance(choice, dict):
            message = choice.get("message")
            parts.append(_content(message.get("content")) if isinstance(message, dict) else _content(choice.get("text")))
    for item in _list(response.get("output")):  # the Responses API
        if isinstance(item, dict):
            parts += [_content(c.get("text")) for c in _list(item.get("content")) if isinstance(c, dict)]
    return "\n".join(p for p in parts if p)[:MAX_TEXT]


@dataclass(frozen=True)
class Actor:
    type: str
    id: str
    role: str
    scopes: tuple[str, ...]
    untrusted_label: str | None


def actor_of(metadata: dict[str, Any], end_user: Any, user_role: Any, *, authenticated: bool = True) -> Actor:
    """The identity LiteLLM authenticated, with its team and organisation as scopes; for a caller
    it refused at authentication, `litellm:unauthenticated`, with the key's hash prefix as the
    untrusted label (what was presented, not who)."""
    user = _text(metadata.get("user_api_key_user_id"))
    key_hash = _text(metadata.get("user_api_key_hash"), 128)
    if not authenticated:
        label = _text(end_user) or (f"key-sha256:{key_hash[:16]}" if key_hash else None)
        return Actor("service", "litellm:unauthenticated", "none", (), label)
    alias = _text(metadata.get("user_api_key_alias"))
    scopes = []
    for name, field in (("team", "user_api_key_team_id"), ("org", "user_api_key_org_id"),
                        ("project", "user_api_key_project_id")):
        value = _text(metadata.get(field))
        if value:
            scopes.append(f"{name}:{value}")
    if alias:
        scopes.append(f"key_alias:{alias}")
    role = _text(user_role) or _text(metadata.get("user_api_key_team_alias")) or "litellm_caller"
    label = _text(end_user) or _text(metadata.get("user_api_key_end_user_id"))
    if user and user != MASTER_USER:
        return Actor("workforce", user, role, tuple(scopes), label)
    if key_hash == "litellm_proxy_master_key" or user == MASTER_USER:
        return Actor("service", "litellm:master-key", role, tuple(scopes), label)
    if key_hash:
        return Actor("service", f"litellm-key:{key_hash[:16]}", role, tuple(scopes), label)
    return Actor("service", "litellm:unauthenticated", role, tuple(scopes), label)


def decision_of(payload: dict[str, Any]) -> tuple[str, list[str], str | None]:
    """allow or deny, why, and what refused it (guardrail, authentication, budget ...; None when
    nothing did), from the payload's status and error."""
    status = payload.get("status")
    guardrails = [g for g in _list(_dict(payload.get("metadata")).get("applied_guardrails")) if isinstance(g, str)]
    ran = f" (guardrails run: {', '.join(g[:128] for g in guardrails[:16])})" if guardrails else ""
    if status == "success":
        return "allow", [f"allowed by the LiteLLM proxy{ran}"], None
    info = _dict(payload.get("error_information"))
    error_class = _text(info.get("error_class"), 128) or ""
    message = _text(info.get("error_message") or payload.get("error_str"), MAX_REASON_CHARS) or "no error message"
    refusal = REFUSALS.get(error_class)
    normalized = str(info.get("normalized_error") or "")
    if refusal is None and normalized.startswith("400_CONTENT_POLICY") and not info.get("llm_provider"):
        refusal = "guardrail"
    for g in _list(payload.get("guardrail_information")):
        if isinstance(g, dict) and str(g.get("guardrail_status", "")) in ("guardrail_intervened", "blocked"):
            refusal = "guardrail"
    if refusal == "guardrail":
        named = _GUARDRAIL.search(message)
        blocked = [str(g.get("guardrail_name"))[:128] for g in _list(payload.get("guardrail_information"))
                   if isinstance(g, dict) and g.get("guardrail_name")]
        name = named.group(1) if named else (blocked[0] if blocked else (guardrails[0] if guardrails else "unnamed"))
        return "deny", [f"guardrail {name} blocked the request: {message}"], refusal
    code = _text(info.get("error_code"), 16)
    if refusal is None and not info.get("llm_provider") and code in PROXY_CODES:
        refusal = PROXY_CODES[code]
    if refusal is not None and not info.get("llm_provider"):
        return "deny", [f"the LiteLLM proxy refused the request ({refusal}, {error_class}): {message}"], refusal
    return "allow", [f"allowed by the LiteLLM proxy{ran}",
                     f"the vendor failed{' (' + code + ')' if code else ''}: {error_class + ': ' if error_class else ''}"
                     f"{message}"], None


@dataclass(frozen=True)
class Policy:
    """A LiteLLM proxy config as a policy bundle: its id, version (<declared>+sha256.<hex of the
    canonical JSON>), the canonical JSON, and the YAML shown for it."""

    policy_id: str
    version: str
    canonical_json: bytes
    source_yaml: str


def strip_secrets(value: Any, key: str = "") -> Any:
    """The config with every value under a secret-looking name replaced (a reference to the
    environment, `os.environ/NAME`, is kept: it names where the secret is, not the secret), and
    the credentials in URLs removed; numbers that are not safe integers, and dates, as text."""
    if isinstance(value, dict):
        return {str(k): strip_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_secrets(v, key) for v in value]
    if isinstance(value, str):
        if value.startswith("os.environ/"):
            return value
        if SECRET_KEY.search(key) and value:
            return STRIPPED
        return _URL_USERINFO.sub(lambda m: m.group(1) + STRIPPED + "@", value)
    if SECRET_KEY.search(key) and value is not None and not isinstance(value, bool):
        return STRIPPED
    if value is None or isinstance(value, bool) or (isinstance(value, int) and abs(value) < 2**53):
        return value
    return repr(value) if isinstance(value, float) else str(value)  # canonical JSON has no floats (RFC 8785 here)


def config_policy(config: dict[str, Any], policy_id: str, litellm_version: str) -> Policy:
    """The bundle for a proxy config: stripped, canonicalised, hashed; its YAML is the same stripped
    document (never the original file, which holds what was stripped)."""
    doc = {"kind": PROXY_CONFIG_KIND, "litellm_version": litellm_version, "config": strip_secrets(config)}
    canonical = canonicalize(doc)
    version = f"{DECLARED}+sha256.{hashlib.sha256(canonical).hexdigest()}"
    return Policy(policy_id, version, canonical, yaml.safe_dump(doc, sort_keys=True, allow_unicode=True))


def occurred(payload: dict[str, Any]) -> datetime:
    start = payload.get("startTime")
    if isinstance(start, (int, float)) and start > 0:
        return datetime.fromtimestamp(float(start), timezone.utc)
    return datetime.now(timezone.utc)


def slim(payload: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """What an event needs of a payload, taken where LiteLLM calls (the rest is let go at once): the
    payload without its messages and response (the answering model kept), the prompt's text and the
    response's text (each at most MAX_TEXT characters)."""
    answered = payload.get("status") == "success"
    response = payload.get("response")
    kept = {k: v for k, v in payload.items() if k in KEPT}
    kept["response"] = {"model": response.get("model")} if isinstance(response, dict) else None
    return kept, prompt_text(payload.get("messages")), response_text(response) if answered else ""


# What event_of reads of a payload (slim keeps these and nothing else).
KEPT = ("litellm_call_id", "id", "status", "call_type", "custom_llm_provider", "model", "model_group", "startTime",
        "endTime", "prompt_tokens", "completion_tokens", "end_user", "metadata", "error_information", "error_str",
        "guardrail_information")


def event_of(payload: dict[str, Any], *, policy: Policy, classifier: Classifier, retention_scope: str,
             user_role: Any = None, traceparent: str | None = None, texts: tuple[str, str] | None = None
             ) -> dict[str, Any]:
    """The Avro datum (schemas/ai_request.avsc) for one proxy request; the emitter stamps and signs it.
    `texts`: the prompt's and the response's text when `slim` took them already."""
    metadata = _dict(payload.get("metadata"))
    decision, reasons, refused_by = decision_of(payload)
    actor = actor_of(metadata, payload.get("end_user"), user_role, authenticated=refused_by != "authentication")
    answered = payload.get("status") == "success"
    if texts is None:
        prompt, response = prompt_text(payload.get("messages")), response_text(payload.get("response")) if answered else ""
    else:
        prompt, response = texts[0][:MAX_TEXT], texts[1][:MAX_TEXT] if answered else ""
    prompt_cls = classifier.classify(prompt)
    response_cls = classifier.classify(response) if answered else None
    response_obj = payload.get("response")
    response_model = _text(response_obj.get("model")) if isinstance(response_obj, dict) else None
    model_group = _text(payload.get("model_group"))
    model = _text(payload.get("model")) or "unknown"
    provider = _text(payload.get("custom_llm_provider")) or (model.split("/", 1)[0] if "/" in model else "unknown")
    start, end = payload.get("startTime"), payload.get("endTime")
    latency = int(max(0.0, float(end) - float(start)) * 1_000_000) if isinstance(start, (int, float)) and isinstance(
        end, (int, float)) else 0
    call_id = _text(payload.get("litellm_call_id") or payload.get("id"), 128) or "unknown"
    trace = trace_context(traceparent)
    return {
        "event_id": call_id,
        "occurred_at": occurred(payload),
        "actor": {"type": actor.type, "id": actor.id, "on_behalf_of": None, "untrusted_label": actor.untrusted_label},
        "authz": {"role": actor.role, "scopes": list(actor.scopes), "authn_method": "litellm"},
        "route": model_group or model,
        "gen_ai_operation_name": OPERATIONS.get(str(payload.get("call_type")), str(payload.get("call_type") or "chat")[:64]),
        "gen_ai_provider_name": PROVIDERS.get(provider, provider[:64]),
        "gen_ai_request_model": model_group or model,
        "gen_ai_response_model": response_model,
        "prompt_classification": prompt_cls.avro(),
        "response_classification": response_cls.avro() if response_cls is not None else None,
        "policy_id": policy.policy_id,
        "policy_version": policy.version,
        "decision": decision,
        "decision_reasons": [r[:MAX_REASON_CHARS] for r in reasons][:MAX_REASONS],
        "retention_scope": retention_scope,
        "gen_ai_usage_input_tokens": max(0, int(payload.get("prompt_tokens") or 0)),
        "gen_ai_usage_output_tokens": max(0, int(payload.get("completion_tokens") or 0)),
        "latency_us": latency,
        "content_features": content_features(prompt, prompt_cls, response, response_cls),
        "prompt_commitment": None,
        "response_commitment": None,
        "trace_id": trace[0],
        "span_id": trace[1],
    }
