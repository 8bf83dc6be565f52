"""A finding as the scoring worker makes it, for the delivery tests."""

from __future__ import annotations

from typing import Any

from aiaudit.detectors.rules import RuleHit
from aiaudit.pipeline.score.ocsf import detection_finding

SECRET = b"s3cret-shared-with-the-receiver"


def finding(actor: str = "alice@acme.example", *, severity: str = "high", rules: tuple[str, ...] = ("prompt_injection",),
            route: str | None = "chat", why: str = "2 markers") -> dict[str, Any]:
    event = {"actor": {"id": actor, "type": "workforce"}, "decision": "allow", "event_id": "e1",
             "occurred_at": "2026-11-29T10:00:00.000000Z", "gen_ai_provider_name": "openai",
             "gen_ai_request_model": "gpt-4o", "route": route}
    return detection_finding(origin="acme/prod/ai.requests/p1/g1", seq=42, leaf_hash="ab" * 32, event=event,
                             score=0.41, severity=severity, explanation=[], model_version="m1",
                             detected_at_ms=1_795_950_000_123, rule_hits=[RuleHit(r, severity, why) for r in rules])
