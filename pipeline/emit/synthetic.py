"""Realistic synthetic AI-request events for demos, tests and benchmarks (pure, seeded).

A population of people and agents with roles, calling several vendors and models on a
few routes under two policy versions. Decisions follow a simple policy: restricted data
never leaves for a vendor outside the route's approved list; secrets are redacted.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from aiaudit.pipeline import contract

PEOPLE = [
    ("alice@acme.example", "finance-analyst"),
    ("bob@acme.example", "engineer"),
    ("carol@acme.example", "engineer"),
    ("dan@acme.example", "support-agent"),
    ("erin@acme.example", "legal-counsel"),
    ("frank@acme.example", "hr-partner"),
    ("grace@acme.example", "data-scientist"),
    ("heidi@acme.example", "sales"),
]
AGENTS = [
    ("agent:invoice-bot", "finance-automation", "alice@acme.example"),
    ("agent:code-reviewer", "engineering-automation", "bob@acme.example"),
    ("agent:ticket-triage", "support-automation", "dan@acme.example"),
]
MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4"),
    ("azure.ai.openai", "gpt-4o"),
    ("mistral_ai", "mistral-large"),
]
# The highest level each vendor may receive (the scorer's view in the demo: detectors/traffic.py's
# TUNING): what a gateway would not send there is denied, as a gateway would.
VENDOR_MAX_LEVEL = {"openai": "confidential", "anthropic": "confidential", "azure.ai.openai": "restricted",
                    "mistral_ai": "internal"}
ROUTES = ["/v1/chat/completions", "/v1/embeddings", "/assist/code", "/assist/contracts", "/assist/support"]
LEVELS = list(contract.LEVELS)  # public, internal, confidential, restricted (weights below follow this order)
CATEGORIES = {
    "public": [],
    "internal": ["org.project_name"],
    "confidential": ["pii.email", "pii.phone", "org.customer_name"],
    "restricted": ["pii.iban", "pii.card_number", "pii.national_id", "secret.api_key"],
}
# Placeholder (policy id, version) pairs for traffic that stands alone; the demo passes the versions of
# policy bundles it really publishes, so `aiaudit gateway policy --version` finds each one.
POLICIES = [("acme-default", "2026.10.0+sha256:4f0c1e2d9a7b"), ("acme-default", "2026.11.0+sha256:9b3e5a6c2d18")]


@dataclass
class SyntheticEvents:
    """Deterministic for a given seed and start time; events `step` apart on average."""

    seed: int
    start: datetime
    emitter_id: str
    step: timedelta = timedelta(milliseconds=20)
    policies: Sequence[tuple[str, str]] = tuple(POLICIES)  # (policy_id, version): the first 40%, then the second

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._rng = random.Random(self.seed)
        self._n = 0
        self._t = self.start

    def next_event(self) -> dict[str, Any]:
        """One event in Avro datum form (occurred_at a datetime). emitter_seq is the caller's."""
        rng = self._rng
        self._t += timedelta(microseconds=rng.randint(1, int(self.step.total_seconds() * 2e6)))
        self._n += 1
        if rng.random() < 0.25:
            actor_id, role, on_behalf = rng.choice(AGENTS)
            actor = {"type": "agent", "id": actor_id, "on_behalf_of": on_behalf, "untrusted_label": None}
            authn = "api_key"
        else:
            actor_id, role = rng.choice(PEOPLE)
            actor = {"type": "workforce", "id": actor_id, "on_behalf_of": None,
                     "untrusted_label": actor_id.split("@")[0] if rng.random() < 0.1 else None}
            authn = "oidc"
        provider, model = rng.choice(MODELS)
        level = rng.choices(LEVELS, weights=[40, 35, 18, 7])[0]
        cats = sorted(set(rng.sample(CATEGORIES[level], k=min(len(CATEGORIES[level]), rng.randint(0, 2)))))
        policy_id, policy = self.policies[0] if self._n % 1000 < 400 else self.policies[-1]
        reasons: list[str]
        if LEVELS.index(level) > LEVELS.index(VENDOR_MAX_LEVEL[provider]):
            decision, reasons = "deny", [f"{level} data may not go to {provider}"]
        elif "secret.api_key" in cats:
            decision, reasons = "redact", ["secret redacted before sending"]
        else:
            decision, reasons = "allow", ["route permits vendor and classification"]
        prompt_chars = int(rng.lognormvariate(6.5, 1.0))
        answered = decision != "deny"
        response_chars = int(rng.lognormvariate(7.0, 0.8)) if answered else 0
        key = rng.randbytes(32)
        route = "/v1/embeddings" if rng.random() < 0.1 else rng.choice(ROUTES)
        return {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "emitter_id": self.emitter_id,
            "emitter_seq": 0,
            "occurred_at": self._t,
            "actor": actor,
            "authz": {"role": role, "scopes": [f"route:{route}", f"vendor:{provider}"], "authn_method": authn},
            "route": route,
            "gen_ai_operation_name": "embeddings" if route == "/v1/embeddings" else "chat",
            "gen_ai_provider_name": provider,
            "gen_ai_request_model": model,
            "gen_ai_response_model": f"{model}-2026-08-06" if answered else None,
            "prompt_classification": {"level": level, "categories": cats},
            "response_classification": {"level": rng.choice(LEVELS[:2]), "categories": []} if answered else None,
            "policy_id": policy_id,
            "policy_version": policy,
            "decision": decision,
            "decision_reasons": reasons,
            "retention_scope": "restricted-90d" if level == "restricted" else "standard-1y",
            "gen_ai_usage_input_tokens": prompt_chars // 4 if answered else 0,
            "gen_ai_usage_output_tokens": response_chars // 4,
            "latency_us": rng.randint(150_000, 4_000_000) if answered else rng.randint(200, 2_000),
            "content_features": {
                "prompt_chars": prompt_chars,
                "response_chars": response_chars,
                "prompt_entropy_milli": rng.randint(3800, 4700),
                "prompt_pii_hits": sum(c.startswith("pii.") for c in cats),
                "prompt_secret_hits": sum(c.startswith("secret.") for c in cats),
                "response_pii_hits": 0,
                "response_secret_hits": 0,
                "injection_markers": 1 if rng.random() < 0.01 else 0,
                "url_count": rng.randint(0, 2),
                "encoded_blob_count": 0,
            },
            "prompt_commitment": hmac.new(key, rng.randbytes(64), hashlib.sha256).hexdigest(),
            "response_commitment": hmac.new(key, rng.randbytes(64), hashlib.sha256).hexdigest() if answered else None,
            "trace_id": rng.randbytes(16).hex(),
            "span_id": rng.randbytes(8).hex(),
        }


def malformed_messages(seed: int, max_event_bytes: int) -> list[tuple[str, bytes]]:
    """One message of each kind of bad input the chain worker must dead-letter, labelled by reason."""
    from aiaudit.pipeline import contract  # local: keeps this module free of fastavro for pure users

    rng = random.Random(seed)
    good = SyntheticEvents(seed, datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc), "malformed-demo").next_event()
    datum = contract.encode_datum(good)
    framed = contract.frame_single_object(datum)
    missing = {**good, "actor": {**good["actor"], "id": ""}, "policy_version": ""}
    return [
        ("malformed", rng.randbytes(64)),
        ("malformed", framed[: len(framed) // 2]),
        ("unknown_schema", contract.SINGLE_OBJECT_MAGIC + rng.randbytes(8) + datum),
        ("unknown_schema", contract.frame_confluent(42, datum)),
        ("invalid", contract.frame_single_object(contract.encode_datum(missing))),
        ("oversized", framed + b"\x00" * max_event_bytes),
    ]


def forged_message(seed: int) -> bytes:
    """A well-formed event that no emitter key signed: what a writer to the requests topic could forge.
    The chain worker dead-letters it as unauthenticated_emitter (while it requires signatures)."""
    from aiaudit.pipeline import contract

    event = SyntheticEvents(seed, datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc), "edge-forged").next_event()
    return contract.frame_single_object(contract.encode_datum({**event, "emitter_id": "edge-forged", "emitter_seq": 0}))
