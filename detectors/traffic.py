"""Labelled AI traffic (pure, seeded): a population with habits, and injected misuse.

People work their own hours on their usual vendors and models; agents run around the clock
at steady rates. Misuse scenarios are injected into a chosen day; every event carries a
label ("normal" or the scenario name) beside it, never inside it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from detectors.features import LEVELS

VENDORS = {"openai": ["gpt-4o", "gpt-4o-mini"], "anthropic": ["claude-sonnet-4", "claude-haiku-4"],
           "azure.ai.openai": ["gpt-4o"], "mistral_ai": ["mistral-large"]}
UNAPPROVED = ("deepseek", "deepseek-chat")
SCENARIOS = ("exfil_burst", "secrets_to_unapproved_vendor", "prompt_injection", "agent_new_vendor",
             "night_activity", "huge_responses")
LEVEL_NAMES = list(LEVELS)


@dataclass
class Identity:
    id: str
    kind: str  # workforce | agent
    on_behalf_of: str | None
    vendors: list[tuple[str, str]]
    start_hour: int
    end_hour: int
    per_hour: float
    prompt_mu: float  # log prompt length
    response_mu: float
    level_weights: list[int]


def population(rng: random.Random, people: int = 40, agents: int = 8) -> list[Identity]:
    pairs = [(v, m) for v, ms in VENDORS.items() for m in ms]
    out = []
    for i in range(people):
        start = rng.randint(6, 10)
        out.append(Identity(f"user{i:02d}@acme.example", "workforce", None, rng.sample(pairs, rng.randint(1, 3)),
                            start, start + rng.randint(8, 10), rng.uniform(1.0, 6.0), rng.uniform(5.5, 7.5),
                            rng.uniform(6.5, 8.0), rng.choice([[60, 30, 9, 1], [30, 50, 18, 2], [10, 50, 35, 5]])))
    for i in range(agents):
        out.append(Identity(f"agent:bot{i}", "agent", f"user{i:02d}@acme.example", rng.sample(pairs, 1), 0, 24,
                            rng.uniform(4.0, 12.0), rng.uniform(6.0, 8.0), rng.uniform(6.0, 7.5), [20, 60, 20, 0]))
    return out


def _event(rng: random.Random, who: Identity, when: datetime, *, vendor: tuple[str, str] | None = None,
           prompt_chars: int | None = None, response_chars: int | None = None, level: str | None = None,
           pii: int = 0, secrets: int = 0, injection: int = 0, urls: int | None = None, blobs: int = 0) -> dict[str, Any]:
    provider, model = vendor or rng.choice(who.vendors)
    level = level or rng.choices(LEVEL_NAMES, weights=who.level_weights)[0]
    prompt = prompt_chars if prompt_chars is not None else int(rng.lognormvariate(who.prompt_mu, 0.6))
    response = response_chars if response_chars is not None else int(rng.lognormvariate(who.response_mu, 0.5))
    if level in ("confidential", "restricted") and not pii:
        pii = rng.randint(0, 2)
    return {
        "event_id": f"{rng.getrandbits(128):032x}",
        "occurred_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": {"type": who.kind, "id": who.id, "on_behalf_of": who.on_behalf_of, "untrusted_label": None},
        "gen_ai_provider_name": provider, "gen_ai_request_model": model,
        "prompt_classification": {"level": level, "categories": []},
        "decision": "deny" if level == "restricted" and provider != "azure.ai.openai" and rng.random() < 0.5 else "allow",
        "gen_ai_usage_input_tokens": prompt // 4, "gen_ai_usage_output_tokens": response // 4,
        "latency_us": int(rng.lognormvariate(13.5, 0.4)),
        "content_features": {
            "prompt_chars": prompt, "response_chars": response, "prompt_entropy_milli": rng.randint(4000, 4600),
            "prompt_pii_hits": pii, "prompt_secret_hits": secrets, "response_pii_hits": 0, "response_secret_hits": 0,
            "injection_markers": injection, "url_count": urls if urls is not None else rng.choice([0, 0, 0, 1]),
            "encoded_blob_count": blobs,
        },
    }


ALL_PAIRS = [(v, m) for v, ms in VENDORS.items() for m in ms]


def normal_day(rng: random.Random, people: list[Identity], day: datetime) -> list[dict[str, Any]]:
    """A day of habits, with the rare harmless exceptions real traffic has: a link-heavy prompt,
    a security test with an injection phrase, a try of another approved model, a late hour."""
    events = []
    for who in people:
        hours = range(who.start_hour, min(who.end_hour, 24))
        for hour in hours:
            for _ in range(_poisson(rng, who.per_hour)):
                if rng.random() < 0.01:
                    hour = (hour + rng.choice([-3, -2, 2, 3])) % 24
                when = day + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
                odd = rng.random()
                if odd < 0.02:
                    events.append(_event(rng, who, when, urls=rng.randint(1, 3)))
                elif odd < 0.025:
                    events.append(_event(rng, who, when, injection=1))
                elif odd < 0.035:
                    events.append(_event(rng, who, when, vendor=rng.choice(ALL_PAIRS)))
                elif odd < 0.038:
                    events.append(_event(rng, who, when, secrets=1))
                else:
                    events.append(_event(rng, who, when))
    return events


def _poisson(rng: random.Random, lam: float) -> int:
    n, p, limit = 0, 1.0, pow(2.718281828459045, -lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def inject(rng: random.Random, people: list[Identity], day: datetime) -> list[tuple[dict[str, Any], str]]:
    """Misuse of every scenario on `day`, labelled."""
    humans = [p for p in people if p.kind == "workforce"]
    agents = [p for p in people if p.kind == "agent"]
    out: list[tuple[dict[str, Any], str]] = []
    who = rng.choice(humans)
    t = day + timedelta(hours=who.start_hour + 2)
    for i in range(25):  # a burst of exfiltration-sized prompts
        out.append((_event(rng, who, t + timedelta(seconds=10 * i), prompt_chars=rng.randint(60_000, 120_000),
                           level="confidential"), "exfil_burst"))
    for who in rng.sample(humans, 8):  # secrets and PII pasted for a vendor nobody uses
        t = day + timedelta(hours=who.start_hour + rng.uniform(0, 6))
        out.append((_event(rng, who, t, vendor=UNAPPROVED, level="restricted", pii=rng.randint(2, 5),
                           secrets=rng.randint(1, 3)), "secrets_to_unapproved_vendor"))
    for who in rng.sample(humans, 10):  # prompt-injection markers with links and encoded blobs
        t = day + timedelta(hours=who.start_hour + rng.uniform(0, 6))
        out.append((_event(rng, who, t, injection=rng.randint(2, 5), urls=rng.randint(3, 6), blobs=rng.randint(1, 3)),
                    "prompt_injection"))
    bot = rng.choice(agents)
    new = next(pair for pair in ALL_PAIRS if pair not in bot.vendors)
    for i in range(10):  # an agent suddenly calling a new vendor
        out.append((_event(rng, bot, day + timedelta(hours=13, minutes=3 * i), vendor=new), "agent_new_vendor"))
    who = rng.choice(humans)
    for i in range(8):  # 3 a.m. activity from a daytime user
        out.append((_event(rng, who, day + timedelta(hours=3, minutes=4 * i)), "night_activity"))
    for who in rng.sample(humans, 10):  # responses far larger than usual
        t = day + timedelta(hours=who.start_hour + rng.uniform(0, 6))
        out.append((_event(rng, who, t, response_chars=int(rng.lognormvariate(who.response_mu, 0.3) * 60)),
                    "huge_responses"))
    return out


def labelled_traffic(seed: int, *, train_days: int = 2, start: datetime | None = None
                     ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """(training events: normal days; test events with labels: one more normal day plus misuse), each in time order."""
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 2, tzinfo=timezone.utc)
    people = population(rng)
    train = [e for d in range(train_days) for e in normal_day(rng, people, start + timedelta(days=d))]
    test_day = start + timedelta(days=train_days)
    test = [(e, "normal") for e in normal_day(rng, people, test_day)] + inject(rng, people, test_day)
    train.sort(key=lambda e: e["occurred_at"])
    test.sort(key=lambda pair: pair[0]["occurred_at"])
    return train, test
