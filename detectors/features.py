"""Feature extraction (pure): event (the JSON form in a chain record) + identity state -> vector.

FEATURES fixes the column order. Content features come from the event (computed once at the
edge); behavioural ones from the actor's own history, read *before* the event is added, so a
first use is visible as one. Time is the event's own `occurred_at`, never a clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas import enum_symbols

FEATURES = (
    "prompt_chars_log",  # log1p of prompt length
    "response_chars_log",  # log1p of response length
    "response_to_prompt_log",  # log ratio response/prompt length
    "prompt_entropy",  # bits per character
    "pii_hits",  # PII hits in prompt and response
    "secret_hits",  # secret hits in prompt and response
    "injection_markers",
    "url_and_blob_count",
    "tokens_log",  # log1p of input + output tokens
    "latency_log",  # log1p of latency in ms
    "rate_1m",  # this identity's requests in the previous minute
    "rate_1h_log",  # log1p of its requests in the previous hour
    "vendor_rarity",  # -log of the identity's (smoothed) share of requests to this vendor; first use is highest
    "model_rarity",  # the same for the model
    "hour_rarity",  # -log of the identity's share of requests in this hour of day
    "recent_denials",  # denials of this identity in the previous hour
    "level_above_usual",  # classification level minus the identity's usual (median) level, if above
)
# Classification level -> rank, read from the event contract's enum (public 0 .. restricted 3).
LEVELS = {name: rank for rank, name in enumerate(enum_symbols("Level"))}
WARMUP = 10  # behavioural novelty features stay 0 until an identity has this much history


@dataclass
class IdentityState:
    """What the scorer remembers about one identity. Bounded: windows hold at most an hour."""

    last_hour: deque[float] = field(default_factory=deque)  # epoch seconds
    denials: deque[float] = field(default_factory=deque)
    vendors: dict[str, int] = field(default_factory=dict)
    models: dict[str, int] = field(default_factory=dict)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    levels: list[int] = field(default_factory=lambda: [0] * 4)
    seen: int = 0


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))


def _usual_level(levels: list[int]) -> int:
    half, run = sum(levels) / 2, 0
    for level, count in enumerate(levels):
        run += count
        if run >= half:
            return level
    return 0


def _rarity(count: int, seen: int, bins: int = 4) -> float:
    """-log of a smoothed share: 0 uses out of many is rare, and stays rare for a few more uses."""
    return -math.log((count + 1) / (seen + bins))


def extract(event: dict[str, Any], state: IdentityState) -> list[float]:
    """The FEATURES vector of `event` given the identity's history (state is not changed)."""
    cf = event.get("content_features") or {}
    moment = _time(event)
    now = moment.timestamp()
    prompt, response = cf.get("prompt_chars", 0), cf.get("response_chars", 0)
    level = LEVELS.get(event["prompt_classification"]["level"], 0)
    warm = state.seen >= WARMUP

    return [
        math.log1p(prompt),
        math.log1p(response),
        math.log((response + 1) / (prompt + 1)),
        cf.get("prompt_entropy_milli", 0) / 1000,
        cf.get("prompt_pii_hits", 0) + cf.get("response_pii_hits", 0),
        cf.get("prompt_secret_hits", 0) + cf.get("response_secret_hits", 0),
        cf.get("injection_markers", 0),
        cf.get("url_count", 0) + cf.get("encoded_blob_count", 0),
        math.log1p(event.get("gen_ai_usage_input_tokens", 0) + event.get("gen_ai_usage_output_tokens", 0)),
        math.log1p(event.get("latency_us", 0) / 1000),
        sum(1 for t in state.last_hour if now - t <= 60),
        math.log1p(len(state.last_hour)),
        _rarity(state.vendors.get(event["gen_ai_provider_name"], 0), state.seen) if warm else 0.0,
        _rarity(state.models.get(event["gen_ai_request_model"], 0), state.seen) if warm else 0.0,
        _rarity(state.hours[moment.hour], state.seen, bins=24) if warm else 0.0,
        len(state.denials),
        max(0, level - _usual_level(state.levels)) if warm else 0,
    ]


def observe(event: dict[str, Any], state: IdentityState) -> None:
    """Add `event` to the identity's history, dropping what is older than an hour."""
    moment = _time(event)
    now = moment.timestamp()
    for window in (state.last_hour, state.denials):
        while window and now - window[0] > 3600:
            window.popleft()
    state.last_hour.append(now)
    if event["decision"] == "deny":
        state.denials.append(now)
    vendor, model = event["gen_ai_provider_name"], event["gen_ai_request_model"]
    state.vendors[vendor] = state.vendors.get(vendor, 0) + 1
    state.models[model] = state.models.get(model, 0) + 1
    state.hours[moment.hour] += 1
    state.levels[LEVELS.get(event["prompt_classification"]["level"], 0)] += 1
    state.seen += 1


class FeatureExtractor:
    """Per-identity state for a stream of events in time order; one vector per event."""

    def __init__(self) -> None:
        self.states: dict[str, IdentityState] = {}

    def __call__(self, event: dict[str, Any]) -> list[float]:
        state = self.states.setdefault(event["actor"]["id"], IdentityState())
        vector = extract(event, state)
        observe(event, state)
        return vector


def state_to_dict(state: IdentityState) -> dict[str, Any]:
    """A JSON-able form of the state (for a Faust table or a checkpoint)."""
    return {"last_hour": list(state.last_hour), "denials": list(state.denials), "vendors": state.vendors,
            "models": state.models, "hours": state.hours, "levels": state.levels, "seen": state.seen}


def state_from_dict(d: dict[str, Any] | None) -> IdentityState:
    if not d:
        return IdentityState()
    return IdentityState(deque(d["last_hour"]), deque(d["denials"]), dict(d["vendors"]), dict(d["models"]),
                         list(d["hours"]), list(d["levels"]), int(d["seen"]))
