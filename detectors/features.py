"""Feature extraction (pure): event (the JSON form in a chain record) + identity state -> vector.

FEATURES fixes the column order. Content features come from the event (computed once at the
edge); behavioural ones from the actor's own history, read *before* the event is added, so a
first use is visible as one. Time is the event's own `occurred_at`, never a clock.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiaudit.schemas import enum_symbols

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
    "rate_1m_vs_usual",  # log of (requests in the previous minute + 1) over (the identity's usual per minute + 1)
    "rate_1h_vs_usual",  # the same for the previous hour: a person's burst is large for a person, not for an agent
    "model_rarity",  # -log of the identity's (smoothed) share of requests to this vendor's model; first use is highest
    "route_rarity",  # the same for the route
    "hour_rarity",  # -log of the identity's share of requests in this hour of day
    "weekday_rarity",  # the same for the day of the week (weekend work by a weekday person)
    "dormancy_log",  # log1p of the hours of silence before the identity's current run of requests (0 for its first)
    "recent_denials",  # denials of this identity in the previous hour
    "level_above_usual",  # classification level minus the identity's usual (median) level, if above
    "response_level",  # the response's classification level (0 public .. 3 restricted; 0 when none)
    "response_above_prompt",  # how far the response's level is above the prompt's
    "history_log",  # log1p of the identity's requests so far: new identities are visible as new
    "prompt_vs_usual",  # log1p(prompt length) minus the identity's mean of it (0 in warm-up)
    "response_vs_usual",  # the same for the response
    "is_agent",  # 1 for agents and services: a new vendor or a burst means more for one than for a person
)
# Classification level -> rank, read from the event contract's enum (public 0 .. restricted 3).
LEVELS = {name: rank for rank, name in enumerate(enum_symbols("Level"))}
WARMUP = 10  # behavioural novelty features stay 0 until an identity has this much history
MAX_KEYS = 64  # distinct vendors/models/routes named per identity; any more are counted together as "(other)"
OTHER = "(other)"


@dataclass
class IdentityState:
    """What the scorer remembers about one identity. Bounded: windows hold at most an hour, and
    at most MAX_KEYS vendors, models and routes."""

    last_hour: deque[float] = field(default_factory=deque)  # epoch seconds
    denials: deque[float] = field(default_factory=deque)
    vendors: dict[str, int] = field(default_factory=dict)
    models: dict[str, int] = field(default_factory=dict)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    levels: list[int] = field(default_factory=lambda: [0] * 4)
    seen: int = 0
    routes: dict[str, int] = field(default_factory=dict)
    weekdays: list[int] = field(default_factory=lambda: [0] * 7)
    active_hours: int = 0  # distinct clock hours with a request: seen / active_hours is the usual hourly rate
    last_seen: float | None = None  # epoch seconds of the previous request
    gap_before_run: float = 0.0  # seconds of silence before the current run (a run ends after an hour without requests)
    denied_total: int = 0
    prompt_log_sum: float = 0.0  # sums of log1p(prompt) and log1p(response): the identity's usual sizes
    response_log_sum: float = 0.0
    first_seen: float | None = None  # epoch seconds of the identity's first request (its learning period starts)
    days_active: int = 0  # distinct UTC days with a request
    day_count: int = 0  # requests in the UTC day of last_seen
    vendor_since: dict[str, float] = field(default_factory=dict)  # vendor -> epoch seconds of its first use
    # family -> the identity's latest incident of that family, in its JSON form (detectors/incidents.py;
    # replaced whole, never changed in place, so a batch's copy of the state shares them safely)
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))


def event_time(event: dict[str, Any]) -> float:
    """The event's own time in epoch seconds (windows are measured in it, never by a clock)."""
    return _time(event).timestamp()


def usual_level(levels: list[int]) -> int:
    half, run = sum(levels) / 2, 0
    for level, count in enumerate(levels):
        run += count
        if run >= half:
            return level
    return 0


def _rarity(count: int, seen: int, bins: int = 4) -> float:
    """-log of a smoothed share: 0 uses out of many is rare, and stays rare for a few more uses."""
    return -math.log((count + 1) / (seen + bins))


def _level(classification: dict[str, Any] | None) -> int:
    return LEVELS.get(classification["level"], 0) if classification else 0


def usual_per_hour(state: IdentityState) -> float:
    return state.seen / state.active_hours if state.active_hours else 0.0


RUN_BREAK_S = 3600.0  # a run of requests ends after this long without one


DAY_S = 86400.0


def day_of(t: float) -> int:
    """The UTC day number of epoch seconds `t` (day 0, 1970-01-01, was a Thursday)."""
    return int(t // DAY_S)


def today_so_far(state: IdentityState, now: float) -> int:
    """The identity's requests earlier in the UTC day of `now`."""
    return state.day_count if state.last_seen is not None and day_of(state.last_seen) == day_of(now) else 0


def weekdays_between(first_day: int, last_day: int, weekday: int) -> int:
    """How many days in [first_day, last_day] fall on `weekday` (Monday 0)."""
    if last_day < first_day:
        return 0
    full, extra = divmod(last_day - first_day + 1, 7)
    first_weekday = (first_day + 3) % 7
    return full + (1 if (weekday - first_weekday) % 7 < extra else 0)


def usual_for_day(state: IdentityState, now: float) -> float:
    """The requests the identity makes on the day of `now` as it usually does: the higher of its
    mean for that weekday (over every such day since its first request, silent ones included)
    and its mean per active day. Days before today only."""
    if state.first_seen is None:
        return 0.0
    today, so_far = day_of(now), today_so_far(state, now)
    weekday = (today + 3) % 7
    n = weekdays_between(day_of(state.first_seen), today - 1, weekday)
    on_weekday = (state.weekdays[weekday] - so_far) / n if n else 0.0
    days = state.days_active - (1 if so_far else 0)
    per_active_day = (state.seen - so_far) / days if days > 0 else 0.0
    return max(on_weekday, per_active_day)


def usual_by_now(state: IdentityState, now: float) -> float:
    """The requests the identity usually has made by this time of its day: `usual_for_day` spread
    over the hours of day as its own requests fall (this clock hour counted whole), so a day at
    several times its usual pace shows from its first hours, not only once a whole day's worth is in."""
    if not state.seen:
        return 0.0
    hour = int(now // 3600) % 24
    so_far = today_so_far(state, now)
    # the share of the identity's requests before today that fall at or before this hour of day
    before_today = state.seen - so_far
    earlier_hours = sum(state.hours[: hour + 1]) - so_far
    return usual_for_day(state, now) * max(0, earlier_hours) / before_today if before_today > 0 else 0.0


def gap_before_run(state: IdentityState, now: float) -> float:
    """Seconds of silence before the run `now` belongs to (0 for an identity's first request)."""
    if state.last_seen is None:
        return 0.0
    gap = now - state.last_seen
    return gap if gap > RUN_BREAK_S else state.gap_before_run


def requests_within(state: IdentityState, now: float, seconds: float) -> int:
    """The identity's requests in the `seconds` before `now`: the window is in time order (each
    identity's events are), so a binary search finds where it starts."""
    return len(state.last_hour) - bisect_left(state.last_hour, now - seconds)


def extract(event: dict[str, Any], state: IdentityState) -> list[float]:
    """The FEATURES vector of `event` given the identity's history (state is not changed)."""
    cf = event.get("content_features") or {}
    moment = _time(event)
    now = moment.timestamp()
    prompt, response = cf.get("prompt_chars", 0), cf.get("response_chars", 0)
    level = _level(event["prompt_classification"])
    response_level = _level(event.get("response_classification"))
    warm = state.seen >= WARMUP
    usual = usual_per_hour(state)
    last_minute = requests_within(state, now, 60)

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
        math.log((last_minute + 1) / (usual / 60 + 1)),
        math.log((len(state.last_hour) + 1) / (usual + 1)),
        _rarity(state.models.get(_model_key(event), 0), state.seen) if warm else 0.0,
        _rarity(state.routes.get(event.get("route", ""), 0), state.seen) if warm else 0.0,
        _rarity(state.hours[moment.hour], state.seen, bins=24) if warm else 0.0,
        _rarity(state.weekdays[moment.weekday()], state.seen, bins=7) if warm else 0.0,
        math.log1p(gap_before_run(state, now) / 3600),
        len(state.denials),
        max(0, level - usual_level(state.levels)) if warm else 0,
        response_level,
        max(0, response_level - level),
        math.log1p(state.seen),
        math.log1p(prompt) - state.prompt_log_sum / state.seen if warm and state.prompt_log_sum else 0.0,
        math.log1p(response) - state.response_log_sum / state.seen if warm and state.response_log_sum else 0.0,
        1.0 if event["actor"].get("type") in ("agent", "service") else 0.0,
    ]


def _model_key(event: dict[str, Any]) -> str:
    """Vendor and model together: one novelty signal, not two correlated ones the forest would split on twice."""
    return f"{event['gen_ai_provider_name']}/{event['gen_ai_request_model']}"


def _count(counts: dict[str, int], key: str) -> None:
    if key not in counts and len(counts) >= MAX_KEYS:
        key = OTHER
    counts[key] = counts.get(key, 0) + 1


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
    _count(state.vendors, event["gen_ai_provider_name"])
    _count(state.models, _model_key(event))
    _count(state.routes, event.get("route", ""))
    state.hours[moment.hour] += 1
    state.weekdays[moment.weekday()] += 1
    state.levels[_level(event["prompt_classification"])] += 1
    if state.last_seen is None or int(now // 3600) != int(state.last_seen // 3600):
        state.active_hours += 1
    state.gap_before_run = gap_before_run(state, now)
    if state.last_seen is None or day_of(now) != day_of(state.last_seen):
        state.days_active += 1
        state.day_count = 0
    state.day_count += 1
    vendor = event["gen_ai_provider_name"]
    if vendor not in state.vendor_since and len(state.vendor_since) < MAX_KEYS:
        state.vendor_since[vendor] = now
    if state.first_seen is None:
        state.first_seen = now
    state.last_seen = now if state.last_seen is None else max(state.last_seen, now)
    state.denied_total += event["decision"] == "deny"
    cf = event.get("content_features") or {}
    state.prompt_log_sum += math.log1p(cf.get("prompt_chars", 0))
    state.response_log_sum += math.log1p(cf.get("response_chars", 0))
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
    """A JSON-able form of the state (the scoring worker's state topic)."""
    return {"last_hour": list(state.last_hour), "denials": list(state.denials), "vendors": state.vendors,
            "models": state.models, "hours": state.hours, "levels": state.levels, "seen": state.seen,
            "routes": state.routes, "weekdays": state.weekdays, "active_hours": state.active_hours,
            "last_seen": state.last_seen, "gap_before_run": state.gap_before_run, "denied_total": state.denied_total,
            "prompt_log_sum": state.prompt_log_sum, "response_log_sum": state.response_log_sum,
            "first_seen": state.first_seen, "days_active": state.days_active, "day_count": state.day_count,
            "vendor_since": state.vendor_since, "incidents": state.incidents}


def state_from_dict(d: dict[str, Any] | None) -> IdentityState:
    """The state from its JSON form; a state written before routes, weekdays, runs, denial
    totals, sizes, first use and days were kept reads with those empty (they fill from the next
    request on; an identity with history but no first_seen counts as past its learning period, and
    the vendors it had then count as used since long ago)."""
    if not d:
        return IdentityState()
    last_hour = deque(float(t) for t in d["last_hour"])
    seen = int(d["seen"])
    first_seen = d.get("first_seen")
    return IdentityState(last_hour, deque(float(t) for t in d["denials"]), dict(d["vendors"]), dict(d["models"]),
                         list(d["hours"]), list(d["levels"]), seen, dict(d.get("routes") or {}),
                         list(d.get("weekdays") or [0] * 7), int(d.get("active_hours") or 0),
                         float(d["last_seen"]) if d.get("last_seen") is not None else
                         (last_hour[-1] if last_hour else None), float(d.get("gap_before_run") or 0.0),
                         int(d.get("denied_total") or 0), float(d.get("prompt_log_sum") or 0.0),
                         float(d.get("response_log_sum") or 0.0),
                         float(first_seen) if first_seen is not None else (0.0 if seen else None),
                         int(d.get("days_active") or 0), int(d.get("day_count") or 0),
                         {str(k): float(v) for k, v in d["vendor_since"].items()} if "vendor_since" in d else
                         {str(k): 0.0 for k in d["vendors"]},  # kept before first uses were: known since long ago
                         {str(k): dict(v) for k, v in (d.get("incidents") or {}).items()})
