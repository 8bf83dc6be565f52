"""Labelled traffic (detectors/traffic.py: normal work and injected misuse) as contract events,
sent through the SDK: what the demo and the scoring tests feed the pipeline."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from aiaudit.pipeline.emit.producer import Emitter
from aiaudit.pipeline.settings import Settings


def contract_event(ev: dict[str, Any]) -> dict[str, Any]:
    """A labelled-traffic event completed into the full event contract (Avro datum form)."""
    return {
        "event_id": str(uuid.UUID(ev["event_id"])), "emitter_id": "", "emitter_seq": 0,
        "occurred_at": datetime.fromisoformat(ev["occurred_at"].replace("Z", "+00:00")),
        "actor": ev["actor"], "authz": {"role": "staff", "scopes": [], "authn_method": "oidc"},
        "route": "/v1/chat/completions", "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": ev["gen_ai_provider_name"], "gen_ai_request_model": ev["gen_ai_request_model"],
        "gen_ai_response_model": None, "prompt_classification": ev["prompt_classification"],
        "response_classification": None, "policy_id": "acme-default", "policy_version": "2026.11.0+sha256:9b3e5a6c2d18",
        "decision": ev["decision"], "decision_reasons": [], "retention_scope": "standard-1y",
        "gen_ai_usage_input_tokens": ev["gen_ai_usage_input_tokens"],
        "gen_ai_usage_output_tokens": ev["gen_ai_usage_output_tokens"], "latency_us": ev["latency_us"],
        "content_features": ev["content_features"], "prompt_commitment": None, "response_commitment": None,
        "trace_id": None, "span_id": None,
    }


def emit_all(settings: Settings, events: Iterable[dict[str, Any]], emitter_id: str,
             policy: tuple[str, str] | None = None, *, new_ids: bool = False, ids: list[str] | None = None) -> int:
    """Send labelled events through the SDK (under `policy` (id, version) when given); returns how many.
    The generator's event ids are the same on every run: `new_ids` gives each event a fresh one (a
    demo run again against the same store would otherwise chain each event twice). `ids`, when
    given, receives each event's id as sent, in order."""
    emitter = Emitter(settings, emitter_id=emitter_id)
    n = 0
    for ev in events:
        event = contract_event(ev)
        if new_ids:
            event["event_id"] = str(uuid.uuid4())
        if policy is not None:
            event["policy_id"], event["policy_version"] = policy
        emitter.emit(event)
        if ids is not None:
            ids.append(event["event_id"])
        n += 1
    emitter.flush()
    return n
