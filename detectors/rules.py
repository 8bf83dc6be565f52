"""Rule detectors (pure, versioned): known-bad patterns caught whatever the training window held.

An isolation forest cannot raise a score on a feature that never varied while it was trained:
where normal traffic has no secrets, no injection markers and no data above a vendor's level,
those signals are invisible to it. These rules run beside the model on every event, read the
identity's state *before* the event is added (like the features), and each hit says which rule
fired, its version, and why, in words an analyst can check against the record.

What a vendor may receive comes from the policy (the gateway bundle's `vendors: {name:
{max_level}}`): `RuleConfig.vendor_max_level`. Without it the two rules that need it are off
(the worker says so at start); a vendor the policy does not list may receive public data only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aiaudit.detectors.features import (
    DAY_S,
    LEVELS,
    WARMUP,
    IdentityState,
    gap_before_run,
    requests_within,
    today_so_far,
    usual_by_now,
    usual_for_day,
    usual_level,
    usual_per_hour,
)

RULES_VERSION = "rules-3"
RULE_NAMES = ("sensitive_to_unapproved_vendor", "response_above_route", "secrets_sent", "prompt_injection",
              "denial_burst", "request_burst", "response_above_prompt", "new_vendor_sensitive", "volume_above_profile",
              "new_identity_volume", "size_far_above_usual", "odd_hours_run", "dormant_identity_burst")
SEVERITY_RANK = {"medium": 1, "high": 2, "critical": 3}
LEVEL_NAMES = list(LEVELS)
SENT = ("allow", "reroute")  # decisions under which the prompt reached the vendor


@dataclass(frozen=True)
class RuleConfig:
    vendor_max_level: dict[str, str] | None = None  # vendor -> highest level it may receive; None: rules off
    unlisted_max_level: str = "public"
    denial_burst: int = 5  # denials of one identity within denial_window_s that make a burst ...
    denial_window_s: float = 600.0
    denial_over_usual: float = 5.0  # ... and this many times the identity's usual denials in such a window
    injection_markers: int = 3  # marker weight alone that is an attempt: one strong marker (3) or three weak
    # ones (1 each); any marker with an encoded blob is one too
    burst_per_minute: int = 10  # requests of one identity in a minute that make a burst ...
    burst_over_usual: float = 10.0  # ... and this many times its usual rate
    dormant_days: float = 7.0  # silence before a run that makes the identity dormant ...
    dormant_per_hour: int = 6  # ... and requests within the hour that make its waking a burst ...
    dormant_over_usual: float = 2.0  # ... and this many times its usual hourly rate (medium) ...
    dormant_high_over_usual: float = 4.0  # ... or this many times (high)
    odd_hour_share: float = 0.02  # an hour of day holding less than this share of the identity's requests ...
    odd_hour_run: int = 5  # ... with this many requests within the hour, once it has odd_hour_history requests
    odd_hour_history: int = 50
    odd_hour_active_hours: int = 40  # ... spread over this many clock hours (a week of a person's, two days of an agent's)
    size_over_usual: float = 20.0  # a prompt or response this many times the identity's usual size ...
    size_at_least: int = 10_000  # ... and at least this many characters
    learning_days: float = 7.0  # an identity's learning period: only the rules that need no history about it fire
    volume_over_usual: float = 2.5  # requests in a UTC day this many times what the identity usually makes that day ...
    volume_at_least: int = 20  # ... and at least this many, once the identity has this many days with requests:
    volume_active_days: int = 7  # (a state kept before days were counted starts counting at the upgrade)
    new_identity_days: float = 1.0  # an identity first seen this recently is new ...
    new_identity_per_hour: int = 20  # ... and a person at volume with this many requests within an hour (no
    # person's busiest hour in the tuning families reaches it) ...
    new_agent_per_hour: int = 200  # ... or an agent or service with this many (a new agent runs at its volume from
    # its first hour: the tuning families' agents reach 132)
    new_vendor_days: float = 7.0  # a vendor the identity first used this recently is new to it
    off: frozenset[str] = frozenset()  # rules switched off (the rules file's `disabled`)
    version: str = RULES_VERSION  # what findings name: the code's rules, and the rules file's hash when one is set

    def learning(self, state: IdentityState, now: float) -> bool:
        """Whether the identity is in its learning period (first seen under learning_days ago)."""
        return state.first_seen is None or now - state.first_seen < self.learning_days * DAY_S

    def max_level(self, vendor: str) -> int:
        assert self.vendor_max_level is not None
        return LEVELS[self.vendor_max_level.get(vendor, self.unlisted_max_level)]


@dataclass(frozen=True)
class RuleHit:
    rule: str
    severity: str
    reason: str


def check(event: dict[str, Any], state: IdentityState, config: RuleConfig, now: float, *,
          scorer_since: float | None = None) -> list[RuleHit]:
    """The rules `event` breaks, given the identity's state before it (`now`: the event's epoch
    seconds). An identity in its learning period raises only the rules that need no history
    about it; `scorer_since` (when the scorer's state begins) tells a new identity from one a
    scorer that itself has just started has not seen yet (None: it has just started)."""
    hits = []
    learning = config.learning(state, now)
    cf = event.get("content_features") or {}
    vendor = event["gen_ai_provider_name"]
    decision = event["decision"]
    level = LEVELS.get(event["prompt_classification"]["level"], 0)
    secrets = cf.get("prompt_secret_hits", 0) + cf.get("response_secret_hits", 0)
    response = event.get("response_classification")

    if config.vendor_max_level is not None and decision in SENT:
        allowed = config.max_level(vendor)
        if level > allowed or (secrets and allowed < LEVELS["restricted"]):
            what = f"{secrets} secret(s) and " if secrets else ""
            hits.append(RuleHit("sensitive_to_unapproved_vendor", "critical" if secrets else "high",
                                f"{what}{LEVEL_NAMES[level]} data sent to {vendor} (the policy allows it "
                                f"{LEVEL_NAMES[allowed]} data at most; decision {decision})"))
        if response and LEVELS.get(response["level"], 0) > allowed:
            hits.append(RuleHit("response_above_route", "high",
                                f"{vendor} answered with {response['level']} data on route {event.get('route', '?')} "
                                f"(the policy allows it {LEVEL_NAMES[allowed]} data at most)"))
    elif secrets and decision in SENT and config.vendor_max_level is None:
        hits.append(RuleHit("secrets_sent", "high", f"{secrets} secret(s) sent to {vendor} (decision {decision})"))

    markers, blobs = cf.get("injection_markers", 0), cf.get("encoded_blob_count", 0)
    if markers >= config.injection_markers or (markers and blobs):
        hits.append(RuleHit("prompt_injection", "high",
                            f"injection marker weight {markers}" + (f" with {blobs} encoded blob(s)" if blobs else "")))

    usual = usual_per_hour(state)
    if decision == "deny":
        recent = 1 + sum(1 for t in state.denials if now - t <= config.denial_window_s)
        # The identity's usual denials in such a window: an agent its policy denies all day is not bursting.
        expected = state.denied_total / state.seen * usual * config.denial_window_s / 3600 if state.seen else 0.0
        if recent >= max(config.denial_burst, config.denial_over_usual * expected):
            hits.append(RuleHit("denial_burst", "medium",
                                f"{recent} denied requests from this identity within {config.denial_window_s / 60:.0f} min "
                                f"(usually {expected:.1f})"))

    last_minute = 1 + requests_within(state, now, 60)
    if last_minute >= max(config.burst_per_minute, config.burst_over_usual * usual / 60):
        hits.append(RuleHit("request_burst", "medium",
                            f"{last_minute} requests from this identity within a minute (usually {usual / 60:.2f})"))

    if not learning and response and decision in SENT:
        prompt_level, response_level = level, LEVELS.get(response["level"], 0)
        if response_level > max(prompt_level, usual_level(state.levels)) and response_level >= LEVELS["confidential"]:
            hits.append(RuleHit("response_above_prompt", "medium",
                                f"{response['level']} data in the answer to a {LEVEL_NAMES[prompt_level]} prompt "
                                f"(this identity usually sends {LEVEL_NAMES[usual_level(state.levels)]} data)"))

    if not learning and decision in SENT:
        since = state.vendor_since.get(vendor)
        # New to an identity with settled habits: first used after its learning period (a vendor taken
        # up in its first week is one of those habits, not a departure from them). For a state kept
        # before first use was recorded (first_seen 0), what is known begins with its earliest vendor.
        known = state.first_seen or min(state.vendor_since.values(), default=0.0)
        new_vendor = vendor not in state.vendors or (
            since is not None and now - since < config.new_vendor_days * DAY_S
            and since - known >= config.learning_days * DAY_S)
        pii = cf.get("prompt_pii_hits", 0)
        above = level > usual_level(state.levels)
        if new_vendor and (above or pii):
            what = f"{LEVEL_NAMES[level]} data" + (f" with {pii} personal-data hit(s)" if pii else "")
            first = "first use" if vendor not in state.vendors else \
                f"in use since {(now - since) / 3600:.0f} h" if since is not None else "new"
            # Restricted data or secrets to a vendor new to the identity page; confidential data or
            # personal data the policy lets that vendor have is one for the day's review (medium).
            severe = level >= LEVELS["restricted"] or secrets
            hits.append(RuleHit("new_vendor_sensitive", "high" if severe else "medium",
                                f"{what} to {vendor}, a vendor new to this identity ({first}; it usually sends "
                                f"{LEVEL_NAMES[usual_level(state.levels)]} data)"))

    if not learning and state.days_active >= config.volume_active_days:
        usual_day = usual_for_day(state, now)
        by_now = usual_by_now(state, now)
        day = 1 + today_so_far(state, now)
        # more than a whole usual day's requests already, at 2.5 times the pace its day usually has by
        # this hour (a day that only starts early is neither)
        if usual_day and day >= max(config.volume_at_least, config.volume_over_usual * by_now, usual_day):
            times = f"{day / by_now:.1f}x " if by_now >= 0.1 else ""
            hits.append(RuleHit("volume_above_profile", "medium",
                                f"{day} requests today (UTC) by {int(now // 3600) % 24:02d}:59, {times}the "
                                f"{by_now:.1f} this identity usually has made by then on a "
                                f"{WEEKDAYS[int(now // DAY_S + 3) % 7]} ({usual_day:.1f} in the whole day)"))

    new_identity = state.first_seen is None or now - state.first_seen < config.new_identity_days * DAY_S
    population_old = scorer_since is not None and now - scorer_since >= config.learning_days * DAY_S
    if new_identity and population_old:
        hour = 1 + requests_within(state, now, 3600)
        agent = event["actor"].get("type") in ("agent", "service")
        if hour >= (config.new_agent_per_hour if agent else config.new_identity_per_hour):
            hits.append(RuleHit("new_identity_volume", "high",
                                f"{hour} requests within an hour from an identity first seen "
                                f"{(now - (state.first_seen or now)) / 3600:.1f} h ago"))

    if not learning and state.seen >= WARMUP:
        for side in ("prompt", "response"):
            chars = cf.get(f"{side}_chars", 0)
            usual_chars = math.expm1(getattr(state, f"{side}_log_sum") / state.seen)
            if chars >= config.size_at_least and math.log1p(chars) - math.log1p(usual_chars) >= math.log(config.size_over_usual):
                hits.append(RuleHit("size_far_above_usual", "medium",
                                    f"{side} of {chars:,} characters, {chars / max(usual_chars, 1):.0f}x this identity's "
                                    f"usual {usual_chars:,.0f}"))

    hour = int(now // 3600) % 24
    if not learning and state.seen >= config.odd_hour_history and state.active_hours >= config.odd_hour_active_hours:
        run = 1 + requests_within(state, now, 3600)
        # The hour of day's share before this clock hour (the run's own requests in it do not count).
        before = max(0, state.hours[hour] - requests_within(state, now, now % 3600))
        if run >= config.odd_hour_run and (before + 1) / state.seen < config.odd_hour_share:
            hits.append(RuleHit("odd_hours_run", "medium",
                                f"{run} requests within an hour at {hour:02d}:00 UTC, an hour that held {before} of "
                                f"this identity's {state.seen - run + 1} requests before"))

    gap = gap_before_run(state, now)
    if gap >= config.dormant_days * 86400:
        in_window = requests_within(state, now, 3600)
        last_hour = 1 + in_window
        # its usual pace before this run: the hour's own requests (and the clock hours they fill) left out
        filled = len({int(t // 3600) for t in list(state.last_hour)[len(state.last_hour) - in_window:]})
        pace = (state.seen - in_window) / (state.active_hours - filled) if state.active_hours > filled else usual
        if last_hour >= max(config.dormant_per_hour, config.dormant_over_usual * pace):
            # Back after a week away at a busy hour's pace is a holiday's end (medium); far above the
            # identity's usual pace it is someone else's use of the account (high).
            severe = last_hour >= config.dormant_high_over_usual * pace
            hits.append(RuleHit("dormant_identity_burst", "high" if severe else "medium",
                                f"{last_hour} requests within an hour after {gap / 86400:.0f} days of silence "
                                f"(usually {pace:.1f} an hour)"))
    return [h for h in hits if h.rule not in config.off] if config.off else hits


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def severity_of(hits: list[RuleHit]) -> str | None:
    return max((h.severity for h in hits), key=SEVERITY_RANK.__getitem__, default=None)


def config_from_policy(policy: dict[str, Any]) -> RuleConfig:
    """RuleConfig from a policy bundle's parsed YAML/JSON (its `vendors` section). Raises ValueError."""
    vendors = policy.get("vendors")
    if not isinstance(vendors, dict) or not vendors:
        raise ValueError("the policy has no vendors section (vendor: {max_level: LEVEL})")
    out = {}
    for name, rule in vendors.items():
        level = (rule or {}).get("max_level", "internal") if isinstance(rule, dict) else None
        if not isinstance(name, str) or level not in LEVELS:
            raise ValueError(f"vendor {str(name)[:60]!r}: max_level must be one of {', '.join(LEVELS)}")
        out[name] = level
    return RuleConfig(vendor_max_level=out)
