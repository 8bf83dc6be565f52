"""The event a gateway request produces (pure): contract fields, commitments, trace context.

Content is never in the event. Depending on the route's `content` rule the event carries
keyed commitments (HMAC-SHA256 of the prompt and response under a per-record random key) and
the key goes to the content topic, with the content itself only under `full` (ARCHITECTURE.md:
deleting the content and key leaves the chain verifiable).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiaudit.pipeline.gateway.classify import Classification
from aiaudit.pipeline.gateway.identity import Principal
from aiaudit.pipeline.gateway.policy import Decision, Policy

MAX_REASON_CHARS = 1024  # each decision reason (they quote model names, vendor errors ...)
MAX_REASONS = 64

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def trace_context(traceparent: str | None) -> tuple[str | None, str | None]:
    """W3C trace id and parent span id, or (None, None) for an absent or invalid header."""
    m = _TRACEPARENT.match(traceparent or "")
    if not m or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None, None
    return m.group(1), m.group(2)


@dataclass(frozen=True)
class Commitments:
    prompt: str | None
    response: str | None
    key: bytes | None


def commit(rule: str, prompt: str, response: str | None, key: bytes) -> Commitments:
    """Keyed commitments for `commitments` and `full` routes; nothing for `none`."""
    if rule == "none":
        return Commitments(None, None, None)

    def mac(text: str) -> str:
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    return Commitments(mac(prompt), mac(response) if response is not None else None, key)


@dataclass(frozen=True)
class Outcome:
    """What happened upstream: nothing (denied), a response, or a failure."""

    response_model: str | None = None
    response_text: str | None = None
    response_class: Classification | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_us: int = 0
    error: str | None = None  # recorded as a decision reason


def build_event(*, event_id: str, occurred_at: datetime, principal: Principal, untrusted_label: str | None,
                route: str, operation: str, provider: str, model: str, prompt_class: Classification,
                policy: Policy, decision: Decision, extra_reasons: tuple[str, ...], retention_scope: str,
                features: dict[str, int], outcome: Outcome, commitments: Commitments,
                trace: tuple[str | None, str | None]) -> dict[str, Any]:
    """The Avro datum (schemas/ai_request.avsc) for one request; the emitter stamps emitter_id/seq."""
    return {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "actor": {"type": principal.type, "id": principal.id, "on_behalf_of": principal.on_behalf_of,
                  "untrusted_label": untrusted_label[:256] if untrusted_label else None},
        "authz": {"role": principal.role, "scopes": list(principal.scopes), "authn_method": principal.authn_method},
        "route": route,
        "gen_ai_operation_name": operation,
        "gen_ai_provider_name": provider,
        "gen_ai_request_model": model,
        "gen_ai_response_model": outcome.response_model,
        "prompt_classification": prompt_class.avro(),
        "response_classification": outcome.response_class.avro() if outcome.response_class else None,
        "policy_id": policy.policy_id,
        "policy_version": policy.version,
        "decision": decision.decision,
        # Reasons quote what callers and vendors said: each bounded, and the list (the contract's limits).
        "decision_reasons": [r if len(r) <= MAX_REASON_CHARS else r[:MAX_REASON_CHARS] + "…[truncated]"
                             for r in [*decision.reasons, *extra_reasons]][:MAX_REASONS],
        "retention_scope": retention_scope,
        "gen_ai_usage_input_tokens": outcome.input_tokens,
        "gen_ai_usage_output_tokens": outcome.output_tokens,
        "latency_us": outcome.latency_us,
        "content_features": features,
        "prompt_commitment": commitments.prompt,
        "response_commitment": commitments.response,
        "trace_id": trace[0],
        "span_id": trace[1],
    }


def kept_content(rule: str, commitments: Commitments, prompt: str, response: str | None) -> dict[str, Any] | None:
    """What a route keeps of a request, before it is sealed: the commitment key, and the content
    under `full`; None when nothing is kept."""
    if rule == "none" or commitments.key is None:
        return None
    full = rule == "full"
    return {"key_b64": base64.b64encode(commitments.key).decode(),
            "prompt": prompt if full else None, "response": response if full else None}


def content_expiry(occurred_at: datetime, retention_days: int) -> str:
    return (occurred_at + timedelta(days=retention_days)).isoformat()


def content_message(*, event_id: str, retention_scope: str, expires_at: str, subjects: tuple[str, ...],
                    key_ids: dict[str, str], sealed: str) -> dict[str, Any]:
    """The content-topic message: what is kept, sealed (contract/sealed.py), never in plaintext."""
    return {"v": 2, "event_id": event_id, "retention_scope": retention_scope, "expires_at": expires_at,
            "subjects": list(subjects), "key_ids": key_ids, "sealed": sealed}
