"""OpenTelemetry GenAI telemetry as a contract event, and the receiver's settings as a policy
bundle (pure).

Spans are read as the GenAI semantic conventions at SEMCONV_VERSION define them: the operation,
the provider, the request and response models, token usage; who asked from `user.id` (or
`enduser.id`) and `user.roles`, an agent from `gen_ai.agent.id`; the messages, when the sender
captures them, from the span's `gen_ai.input.messages` / `gen_ai.output.messages`, from the
`gen_ai.client.inference.operation.details` event, or from the per-message events of earlier
versions (`gen_ai.user.message`, `gen_ai.choice`, ...), each correlated to its span by trace and
span id. The messages are classified and features counted here; their text goes nowhere else.

What a span says is what its sender asserts: the sender is authenticated (a token of its own)
and named in the emitter id; the identity in the span is the one the application reports, as an
SDK emitter's is. A span that is not a GenAI operation is not mapped (the receiver answers it
with OTLP partial success).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
import yaml

from aiaudit.pipeline.gateway.classify import Classification, Classifier, content_features
from aiaudit.pipeline.gateway.event import MAX_REASON_CHARS, MAX_REASONS
from aiaudit.pipeline.gateway.policy import OTLP_CONFIG_KIND
from aiaudit.pipeline.jcs import canonicalize
from aiaudit.pipeline.otlp.wire import STATUS_ERROR, LogEvent, Span

SEMCONV_VERSION = "1.37.0"  # the GenAI semantic conventions read (attributes of earlier versions noted below)
DECLARED = "otlp-receiver"
MAX_TEXT = 1 << 20  # characters of prompt or response classified
MAX_FIELD = 256
NOT_CAPTURED = "content.not_captured"  # the category of a prompt or response whose text the sender did not send
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
# Per-message events of the conventions before 1.37 (their body holds the message).
INPUT_EVENTS = ("gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message")
OUTPUT_EVENTS = ("gen_ai.choice",)
# The event id of a span: a UUID derived from who sent it and its trace and span ids, so a span sent
# twice is one event (the receiver deduplicates; the chain's verifier would see a second one).
_NAMESPACE = uuid.UUID("6b3c2a52-8f7e-4f0e-9d55-0a1f3c2b7e10")


def _text(value: Any, limit: int = MAX_FIELD) -> str | None:
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    return text[:limit] if text else None


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, min(value, 2**62))
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return 0


def is_genai(span: Span) -> bool:
    """Whether the span is a GenAI operation (its operation named, or the provider in the
    pre-1.37 `gen_ai.system`) with ids to deduplicate it by."""
    named = bool(_text(span.attributes.get("gen_ai.operation.name")) or _text(span.attributes.get("gen_ai.system")))
    return named and len(span.trace_id) == 32 and len(span.span_id) == 16 and span.trace_id != "0" * 32 \
        and span.span_id != "0" * 16


def event_id(sender: str, trace_id: str, span_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{sender}\n{trace_id}\n{span_id}"))


# --- messages ------------------------------------------------------------------------------------

def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return ""
    for key in ("content", "text"):
        value = part.get(key)
        if isinstance(value, str):
            return str(value)
    return ""


def messages_text(value: Any) -> str:
    """The text of GenAI messages: a JSON string or a list of {role, parts: [{type, content}]} (1.37),
    or of {role, content} (earlier), or one message; tool calls and media are not text."""
    if isinstance(value, str):
        text = value
        try:
            value = orjson.loads(text[:MAX_TEXT * 2])
        except orjson.JSONDecodeError:
            return text[:MAX_TEXT]
    items = value if isinstance(value, list) else [value]
    texts: list[str] = []
    for m in items[:4096]:
        if isinstance(m, str):
            texts.append(m)
        elif isinstance(m, dict):
            parts = m.get("parts")
            if isinstance(parts, list):
                texts += [_part_text(p) for p in parts[:4096]]
            content = m.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts += [_part_text(p) for p in content[:4096]]
            message = m.get("message")  # a pre-1.37 gen_ai.choice body
            if isinstance(message, dict):
                texts.append(messages_text(message))
    return "\n".join(t for t in texts if t)[:MAX_TEXT]


@dataclass
class Content:
    """What a sender captured of one operation's messages (None: not captured)."""

    system: list[str] = field(default_factory=list)
    prompt: list[str] = field(default_factory=list)
    response: list[str] = field(default_factory=list)

    def chars(self) -> int:
        return sum(len(t) for t in (*self.system, *self.prompt, *self.response))

    def add(self, other: Content) -> None:
        self.system += other.system
        self.prompt += other.prompt
        self.response += other.response


def content_of_attributes(attributes: dict[str, Any]) -> Content | None:
    """The messages a span or a details event carries as attributes, if any."""
    keys = ("gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.output.messages")
    if not any(k in attributes for k in keys):
        return None
    system, prompt, response = (messages_text(attributes.get(k)) for k in keys)
    return Content([system] if system else [], [prompt] if prompt else [], [response] if response else [])


def content_of_log(event: LogEvent) -> Content | None:
    """The messages a log event carries (None: not a GenAI content event)."""
    if event.event_name == DETAILS_EVENT:
        return content_of_attributes(event.attributes) or Content()
    if event.event_name in INPUT_EVENTS:
        text = messages_text(event.body)
        if event.event_name == "gen_ai.system.message":
            return Content(system=[text] if text else [])
        return Content(prompt=[text] if text else [])
    if event.event_name in OUTPUT_EVENTS:
        text = messages_text(event.body)
        return Content(response=[text] if text else [])
    return None


# --- the event -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Policy:
    """The receiver's settings as a policy bundle (what it reads, for whom); its version is
    <declared>+sha256.<hex of the canonical JSON>."""

    policy_id: str
    version: str
    canonical_json: bytes
    source_yaml: str


def receiver_policy(policy_id: str, content_wait_ms: int) -> Policy:
    doc = {"kind": OTLP_CONFIG_KIND, "semantic_conventions": SEMCONV_VERSION, "enforced": False,
           "decision": "observed: the application reports each operation after it ran; aiaudit enforced nothing",
           "identity": "as each authenticated sender reports it (user.id, enduser.id, gen_ai.agent.id)",
           "content_wait_ms": content_wait_ms}
    canonical = canonicalize(doc)
    version = f"{DECLARED}+sha256.{hashlib.sha256(canonical).hexdigest()}"
    return Policy(policy_id, version, canonical, yaml.safe_dump(doc, sort_keys=True, allow_unicode=True))


def _attr(span: Span, *names: str) -> Any:
    """The first of `names` the span has, else the first its resource has."""
    for source in (span.attributes, span.resource):
        for name in names:
            value = source.get(name)
            if value is not None and value != "" and value != []:
                return value
    return None


def _roles(value: Any) -> list[str]:
    if isinstance(value, list):
        return [r for r in (_text(v, 128) for v in value[:32]) if r]
    role = _text(value, 128)
    return [role] if role else []


def actor_of(span: Span, sender: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The actor and authorisation a span reports: an agent (gen_ai.agent.id) acting for the user
    (user.id, or enduser.id) if one is named; else the user; else the sending service itself."""
    user = _text(_attr(span, "user.id", "enduser.id"))
    agent = _text(_attr(span, "gen_ai.agent.id")) or None
    agent_name = _text(_attr(span, "gen_ai.agent.name"))
    roles = _roles(_attr(span, "user.roles", "enduser.role"))
    service = _text(span.resource.get("service.name")) or "unknown_service"
    label = _text(_attr(span, "enduser.pseudo.id", "user.name")) or None
    if agent:
        actor = {"type": "agent", "id": agent, "on_behalf_of": user, "untrusted_label": agent_name or label}
    elif user:
        actor = {"type": "workforce", "id": user, "on_behalf_of": None, "untrusted_label": label}
    else:
        actor = {"type": "service", "id": f"otlp:{sender}/{service}"[:MAX_FIELD], "on_behalf_of": None,
                 "untrusted_label": label}
    scopes = [f"service:{service}"] + [f"role:{r}" for r in roles[1:]]
    return actor, {"role": roles[0] if roles else "unspecified", "scopes": scopes, "authn_method": "otlp"}


def _occurred(span: Span) -> datetime:
    ns = span.start_ns if 0 < span.start_ns < 2**63 else 0
    return datetime.fromtimestamp(ns / 1e9, timezone.utc) if ns else datetime.now(timezone.utc)


def _classify(classifier: Classifier, texts: list[str]) -> tuple[str, Classification]:
    text = "\n".join(texts)[:MAX_TEXT]
    return text, classifier.classify(text)


def event_of(span: Span, content: Content | None, *, sender: str, policy: Policy, classifier: Classifier,
             retention_scope: str) -> dict[str, Any]:
    """The Avro datum (schemas/ai_request.avsc) for one GenAI span; the emitter stamps and signs it.
    Without captured content, both classifications name NOT_CAPTURED at the default level (a
    prompt the receiver did not see is not called public)."""
    a = span.attributes
    failed = span.status_code == STATUS_ERROR or _text(a.get("error.type")) is not None
    actor, authz = actor_of(span, sender)
    operation = _text(a.get("gen_ai.operation.name"), 64) or "chat"
    provider = _text(a.get("gen_ai.provider.name") or a.get("gen_ai.system"), 64) or "unknown"
    request_model = _text(a.get("gen_ai.request.model")) or "unknown"
    reasons = [f"observed by OpenTelemetry from sender {sender} (service "
               f"{_text(span.resource.get('service.name')) or 'unknown_service'}): the application called the vendor; "
               "aiaudit enforced no policy on it"]
    if failed:
        error = _text(a.get("error.type"), 200) or "error"
        reasons.append(f"the vendor failed: {error}: {_text(span.status_message, 500) or 'no message'}")
    if content is None:
        reasons.append("the sender did not capture the messages: the classification is not of their text")
        not_seen = Classification(classifier.default_level, (NOT_CAPTURED,), ())
        prompt, prompt_cls, response, response_cls = "", not_seen, "", None if failed else not_seen
    else:
        prompt, prompt_cls = _classify(classifier, content.system + content.prompt)
        response, response_cls = ("", None) if failed else _classify(classifier, content.response)
    duration = span.end_ns - span.start_ns if span.end_ns >= span.start_ns > 0 else 0
    return {
        "event_id": event_id(sender, span.trace_id, span.span_id),
        "occurred_at": _occurred(span),
        "actor": actor,
        "authz": authz,
        "route": f"otlp:{_text(span.resource.get('service.name')) or 'unknown_service'}"[:MAX_FIELD],
        "gen_ai_operation_name": operation,
        "gen_ai_provider_name": provider,
        "gen_ai_request_model": request_model,
        "gen_ai_response_model": _text(a.get("gen_ai.response.model")),
        "prompt_classification": prompt_cls.avro(),
        "response_classification": response_cls.avro() if response_cls is not None else None,
        "policy_id": policy.policy_id,
        "policy_version": policy.version,
        "decision": "allow",
        "decision_reasons": [r[:MAX_REASON_CHARS] for r in reasons][:MAX_REASONS],
        "retention_scope": retention_scope,
        "gen_ai_usage_input_tokens": _int(a.get("gen_ai.usage.input_tokens") or a.get("gen_ai.usage.prompt_tokens")),
        "gen_ai_usage_output_tokens": _int(a.get("gen_ai.usage.output_tokens")
                                           or a.get("gen_ai.usage.completion_tokens")),
        "latency_us": min(duration // 1000, 2**62),
        "content_features": content_features(prompt, prompt_cls, response, response_cls),
        "prompt_commitment": None,
        "response_commitment": None,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
    }
