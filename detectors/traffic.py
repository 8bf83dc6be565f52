"""Labelled AI traffic (pure, seeded): a population with habits, and injected misuse.

A *family* is a world: its vendors and what each may receive (the policy's `max_level`), its
routes, its people and agents. People work their own hours on their usual vendors and models,
some on weekends, some away for a while, some joining late; agents run around the clock at
very different rates. Normal traffic carries the harmless variety real traffic has: PII in
confidential prompts, a denial when someone pastes restricted data, links, a security test's
injection phrase, another approved model tried. Misuse scenarios are injected into chosen
days; every event carries a label ("normal" or the scenario name) beside it, never inside it.

Two families: the tuning family here (`labelled_traffic`), which detections were tuned on, and
the held-out family (`detectors/heldout.py`: other people, agents, vendors and scenarios),
written before tuning and only ever evaluated.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from aiaudit.detectors.features import LEVELS

LEVEL_NAMES = list(LEVELS)
RANK = LEVELS

Event = dict[str, Any]
Labelled = tuple[Event, str]


@dataclass(frozen=True)
class Family:
    """A world's vendors, what each may receive, and where its identities live."""

    vendors: dict[str, list[str]]
    max_level: dict[str, str]  # vendor -> the highest level it may receive (as the policy's vendors section)
    unapproved: tuple[str, str]  # a vendor nobody uses and the policy does not list
    routes: list[str]
    domain: str
    agent_prefix: str

    def pairs(self) -> list[tuple[str, str]]:
        return [(v, m) for v, ms in self.vendors.items() for m in ms]


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
    route: str
    weekend: float = 0.0  # chance of working a weekend day
    away: set[int] = field(default_factory=set)  # day numbers off (holidays)
    joins: int = 0  # first day number with any activity


def _event(rng: random.Random, fam: Family, who: Identity, when: datetime, *, vendor: tuple[str, str] | None = None,
           prompt_chars: int | None = None, response_chars: int | None = None, level: str | None = None,
           pii: int = 0, secrets: int = 0, injection: int = 0, urls: int | None = None, blobs: int = 0,
           decision: str | None = None, response_level: str | None = None, route: str | None = None) -> Event:
    """One event as the chain holds it. Unless told, the decision is the gateway's: data above
    the vendor's level is denied."""
    provider, model = vendor or rng.choice(who.vendors)
    level = level or rng.choices(LEVEL_NAMES, weights=who.level_weights)[0]
    prompt = prompt_chars if prompt_chars is not None else int(rng.lognormvariate(who.prompt_mu, 0.6))
    response = response_chars if response_chars is not None else int(rng.lognormvariate(who.response_mu, 0.5))
    if level in ("confidential", "restricted") and not pii:
        pii = rng.randint(0, 2)
    if decision is None:
        decision = "deny" if RANK[level] > RANK[fam.max_level.get(provider, "public")] else "allow"
    if decision == "deny":
        response, response_level = 0, None
    elif response_level is None:
        response_level = LEVEL_NAMES[min(RANK[level], rng.choice([0, 1, 1]))]
    return {
        "event_id": f"{rng.getrandbits(128):032x}",
        "occurred_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": {"type": who.kind, "id": who.id, "on_behalf_of": who.on_behalf_of, "untrusted_label": None},
        "route": route or who.route,
        "gen_ai_provider_name": provider, "gen_ai_request_model": model,
        "prompt_classification": {"level": level, "categories": ["pii.email"] if pii else []},
        "response_classification": None if response_level is None else {"level": response_level, "categories": []},
        "decision": decision,
        "gen_ai_usage_input_tokens": prompt // 4, "gen_ai_usage_output_tokens": response // 4,
        "latency_us": int(rng.lognormvariate(13.5, 0.4)),
        "content_features": {
            "prompt_chars": prompt, "response_chars": response, "prompt_entropy_milli": rng.randint(4000, 4600),
            "prompt_pii_hits": pii, "prompt_secret_hits": secrets, "response_pii_hits": 0, "response_secret_hits": 0,
            "injection_markers": injection, "url_count": urls if urls is not None else rng.choice([0, 0, 0, 1]),
            "encoded_blob_count": blobs,
        },
    }


def normal_traffic(rng: random.Random, fam: Family, people: list[Identity], start: datetime, days: range) -> list[Event]:
    """Days of habits: weekdays and weekends, holidays, late joiners, and the rare harmless
    exceptions real traffic has (a link-heavy prompt, a security test with an injection phrase,
    another approved model tried, a late hour, a restricted paste the gateway denies)."""
    events = []
    for d in days:
        day = start + timedelta(days=d)
        weekend = day.weekday() >= 5
        for who in people:
            if d in who.away or d < who.joins:
                continue
            if weekend and who.kind == "workforce" and rng.random() >= who.weekend:
                continue
            rate = who.per_hour * (0.4 if weekend and who.kind == "workforce" else 1.0)
            for hour in range(who.start_hour, min(who.end_hour, 24)):
                for _ in range(_poisson(rng, rate)):
                    h = (hour + rng.choice([-3, -2, 2, 3])) % 24 if rng.random() < 0.01 else hour
                    when = day + timedelta(hours=h, seconds=rng.uniform(0, 3600))
                    events.append(_odd_or_usual(rng, fam, who, when))
    return events


def _odd_or_usual(rng: random.Random, fam: Family, who: Identity, when: datetime) -> Event:
    odd = rng.random()
    if odd < 0.02:
        return _event(rng, fam, who, when, urls=rng.randint(1, 3))
    if odd < 0.025:
        return _event(rng, fam, who, when, injection=1)  # a security test, or a quoted article
    if odd < 0.035:
        return _event(rng, fam, who, when, vendor=rng.choice(fam.pairs()))
    if odd < 0.040 and who.kind == "workforce":
        return _event(rng, fam, who, when, level="restricted")  # denied unless the vendor may receive it
    if odd < 0.10:
        return _event(rng, fam, who, when, level="confidential", pii=rng.randint(1, 4))  # harmless PII
    return _event(rng, fam, who, when)


def _poisson(rng: random.Random, lam: float) -> int:
    n, p, limit = 0, 1.0, pow(2.718281828459045, -lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def sort_events(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e["occurred_at"])


def sort_labelled(events: list[Labelled]) -> list[Labelled]:
    return sorted(events, key=lambda pair: pair[0]["occurred_at"])


# --- the tuning family ----------------------------------------------------------------------

TUNING = Family(
    vendors={"openai": ["gpt-4o", "gpt-4o-mini"], "anthropic": ["claude-sonnet-4", "claude-haiku-4"],
             "azure.ai.openai": ["gpt-4o"], "mistral_ai": ["mistral-large"]},
    max_level={"openai": "confidential", "anthropic": "confidential", "azure.ai.openai": "restricted",
               "mistral_ai": "internal"},
    unapproved=("deepseek", "deepseek-chat"),
    routes=["chat", "code-assist", "support-bot"],
    domain="acme.example", agent_prefix="agent:bot",
)
SCENARIOS = ("exfil_burst", "secrets_to_unapproved_vendor", "prompt_injection", "agent_new_vendor",
             "night_activity", "huge_responses", "denial_burst", "weekend_bulk", "dormant_wakes",
             "person_burst", "response_above_route", "new_identity_secrets")


def population(rng: random.Random, fam: Family = TUNING, people: int = 40, agents: int = 8, days: int = 14
               ) -> list[Identity]:
    pairs = fam.pairs()
    out = []
    for i in range(people):
        start = rng.randint(6, 10)
        away = set()
        if i == people - 1:  # left after three days (the dormant identity of `dormant_wakes`)
            away = set(range(3, days))
        elif rng.random() < 0.15:  # a holiday of 4-9 days inside the window
            first = rng.randint(1, max(1, days - 5))
            away = set(range(first, first + rng.randint(4, 9)))
        out.append(Identity(f"user{i:02d}@{fam.domain}", "workforce", None, rng.sample(pairs, rng.randint(1, 3)),
                            start, start + rng.randint(8, 10), rng.uniform(1.0, 6.0), rng.uniform(5.5, 7.5),
                            rng.uniform(6.5, 8.0), rng.choice([[60, 30, 9, 1], [30, 50, 18, 2], [10, 50, 35, 5]]),
                            rng.choice(fam.routes[:2]), weekend=rng.choice([0.0, 0.0, 0.05, 0.3]), away=away,
                            joins=rng.choice([0] * 9 + [rng.randint(2, max(2, days - 2))])))
    for i in range(agents):
        out.append(Identity(f"{fam.agent_prefix}{i}", "agent", f"user{i:02d}@{fam.domain}", rng.sample(pairs, 1), 0, 24,
                            rng.choice([rng.uniform(1.0, 4.0), rng.uniform(4.0, 12.0), rng.uniform(20.0, 60.0)]),
                            rng.uniform(6.0, 8.0), rng.uniform(6.0, 7.5), [20, 60, 20, 0], fam.routes[-1]))
    return out


def inject(rng: random.Random, fam: Family, people: list[Identity], day: datetime, day_no: int) -> list[Labelled]:
    """Misuse of every tuning scenario around `day`, labelled."""
    humans = [p for p in people if p.kind == "workforce" and p.joins <= day_no and day_no not in p.away]
    agents = [p for p in people if p.kind == "agent"]
    out: list[Labelled] = []

    def add(scenario: str, events: list[Event]) -> None:
        out.extend((e, scenario) for e in events)

    who = rng.choice(humans)
    t = day + timedelta(hours=who.start_hour + 2)
    add("exfil_burst", [_event(rng, fam, who, t + timedelta(seconds=10 * i), prompt_chars=rng.randint(60_000, 120_000),
                               level="confidential") for i in range(25)])
    add("secrets_to_unapproved_vendor", [  # an SDK emitter: no gateway to deny it
        _event(rng, fam, w, day + timedelta(hours=w.start_hour + rng.uniform(0, 6)), vendor=fam.unapproved,
               level="restricted", pii=rng.randint(2, 5), secrets=rng.randint(1, 3), decision="allow")
        for w in rng.sample(humans, min(8, len(humans)))])
    add("prompt_injection", [
        _event(rng, fam, w, day + timedelta(hours=w.start_hour + rng.uniform(0, 6)), injection=rng.randint(2, 5),
               urls=rng.randint(3, 6), blobs=rng.randint(1, 3)) for w in rng.sample(humans, min(10, len(humans)))])
    bot = rng.choice(agents)
    new = next(pair for pair in fam.pairs() if pair not in bot.vendors)
    add("agent_new_vendor", [_event(rng, fam, bot, day + timedelta(hours=13, minutes=3 * i), vendor=new)
                             for i in range(10)])
    who = rng.choice(humans)
    add("night_activity", [_event(rng, fam, who, day + timedelta(hours=3, minutes=4 * i)) for i in range(8)])
    add("huge_responses", [
        _event(rng, fam, w, day + timedelta(hours=w.start_hour + rng.uniform(0, 6)),
               response_chars=int(rng.lognormvariate(w.response_mu, 0.3) * 60)) for w in rng.sample(humans, min(10, len(humans)))])
    who = rng.choice(humans)
    t = day + timedelta(hours=who.start_hour + 1)
    add("denial_burst", [_event(rng, fam, who, t + timedelta(seconds=40 * i), level="restricted",
                                vendor=rng.choice([p for p in fam.pairs() if fam.max_level[p[0]] != "restricted"]))
                         for i in range(8)])
    saturday = day + timedelta(days=(5 - day.weekday()) % 7)
    who = rng.choice([h for h in humans if h.weekend == 0.0] or humans)
    add("weekend_bulk", [_event(rng, fam, who, saturday + timedelta(hours=11, seconds=45 * i),
                                prompt_chars=rng.randint(8_000, 20_000), level="confidential") for i in range(30)])
    # The identity away since its third day (a short window has none: then someone who was at work).
    sleeper = next((p for p in people if p.kind == "workforce" and day_no - 1 in p.away and day_no + 6 in p.away),
                   humans[-1])
    t = day + timedelta(hours=sleeper.start_hour)
    add("dormant_wakes", [_event(rng, fam, sleeper, t + timedelta(seconds=50 * i)) for i in range(40)])
    who = min(humans, key=lambda h: h.per_hour)
    t = day + timedelta(hours=who.start_hour + 3)
    add("person_burst", [_event(rng, fam, who, t + timedelta(seconds=4 * i)) for i in range(40)])
    add("response_above_route", [
        _event(rng, fam, w, day + timedelta(hours=w.start_hour + rng.uniform(0, 6)), level="internal",
               vendor=next(p for p in fam.pairs() if fam.max_level[p[0]] == "internal"), response_level="restricted")
        for w in rng.sample(humans, min(8, len(humans)))])
    newbie = Identity(f"contractor99@{fam.domain}", "workforce", None, [fam.pairs()[0]], 9, 17, 2.0, 6.0, 7.0,
                      [50, 50, 0, 0], fam.routes[0])
    t = day + timedelta(hours=10)
    add("new_identity_secrets", [_event(rng, fam, newbie, t + timedelta(minutes=2 * i), secrets=rng.randint(1, 2),
                                        level="restricted", vendor=fam.pairs()[0], decision="allow") for i in range(5)])
    return out


def labelled_traffic(seed: int, *, train_days: int = 14, start: datetime | None = None, test_days: int = 7,
                     people: int = 40, agents: int = 8) -> tuple[list[Event], list[Labelled]]:
    """(training events: normal days; test events with labels: more normal days plus misuse),
    each in time order. The tuning family. A model needs a window that shows what it will see:
    with calendar and dormancy features, at least a week (a smaller population keeps that short)."""
    return family_traffic(TUNING, population, inject, seed, train_days=train_days, start=start, test_days=test_days,
                          people=people, agents=agents)


def family_traffic(fam: Family, people_of: Callable[..., list[Identity]],
                   inject_into: Callable[[random.Random, Family, list[Identity], datetime, int], list[Labelled]],
                   seed: int, *, train_days: int, start: datetime | None, test_days: int, **sizes: int
                   ) -> tuple[list[Event], list[Labelled]]:
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 2, tzinfo=timezone.utc)  # a Monday
    people = people_of(rng, fam, days=train_days + test_days, **sizes)
    train = normal_traffic(rng, fam, people, start, range(train_days))
    test = [(e, "normal") for e in normal_traffic(rng, fam, people, start, range(train_days, train_days + test_days))]
    test += inject_into(rng, fam, people, start + timedelta(days=train_days), train_days)
    return sort_events(train), sort_labelled(test)
