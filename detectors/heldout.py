"""The held-out family (pure, seeded): other people, agents, vendors, routes and scenarios.

Written before the detections were tuned, and never looked at while tuning them: the tuning
family is `detectors/traffic.py`. `aiaudit detect evaluate` reports both; the targets
(recall at a 1% alert budget, precision at the default threshold, never worse than the z-score
baseline on a scenario) are judged on this family.

Its scenarios are variations an attacker or a careless insider would really produce, none of
them copies of a tuning scenario: slow staged exfiltration over a weekend, a service account
woken after weeks, restricted data through a vendor the policy only allows internal data to,
multi-turn jailbreaks, an agent probing models it may not use, a vendor answering with data
above its route, a brand-new identity pasting credentials, and a person scripting requests.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from aiaudit.detectors.traffic import Event, Family, Identity, Labelled, _event, family_traffic

HELDOUT = Family(
    vendors={"google.gemini": ["gemini-2.5-pro", "gemini-2.5-flash"], "cohere": ["command-r-plus"],
             "aws.bedrock": ["claude-3-5-sonnet", "llama-3-70b"], "openai": ["o3-mini"]},
    max_level={"google.gemini": "confidential", "cohere": "internal", "aws.bedrock": "restricted",
               "openai": "internal"},
    unapproved=("free-llm.example", "chat-unlimited"),
    routes=["assistant", "research", "claims-agent", "ci-review"],
    domain="globex.example", agent_prefix="svc:",
)
SCENARIOS = ("weekend_staged_exfil", "service_account_wakes", "restricted_via_internal_vendor",
             "multi_turn_jailbreak", "agent_model_probing", "vendor_leaks_above_route", "new_hire_credentials",
             "scripted_requests")


def population(rng: random.Random, fam: Family = HELDOUT, days: int = 21) -> list[Identity]:
    pairs = fam.pairs()
    out = []
    for i in range(30):
        start = rng.randint(7, 11)
        away: set[int] = set()
        if rng.random() < 0.2:
            first = rng.randint(0, max(0, days - 4))
            away = set(range(first, first + rng.randint(3, 12)))
        out.append(Identity(f"staff-{i:03d}@{fam.domain}", "workforce", None, rng.sample(pairs, rng.randint(2, 4)),
                            start, start + rng.randint(7, 9), rng.uniform(0.5, 8.0), rng.uniform(5.0, 7.8),
                            rng.uniform(6.0, 8.2), rng.choice([[50, 40, 9, 1], [20, 50, 28, 2], [5, 45, 45, 5]]),
                            rng.choice(fam.routes[:2]), weekend=rng.choice([0.0, 0.1, 0.5]), away=away,
                            joins=rng.choice([0] * 6 + [rng.randint(1, max(1, days - 3))])))
    for i, name in enumerate(["claims-triage", "invoice-reader", "ci-reviewer", "kb-indexer", "mail-sorter", "backup"]):
        rate = [2.0, 8.0, 30.0, 90.0, 15.0, 0.5][i]
        out.append(Identity(f"{fam.agent_prefix}{name}", "agent", f"staff-{i:03d}@{fam.domain}", rng.sample(pairs, 1 + i % 2),
                            0, 24, rate, rng.uniform(6.5, 8.5), rng.uniform(5.5, 7.0), [10, 70, 20, 0],
                            fam.routes[2 + i % 2], away=set(range(2, days)) if name == "backup" else set()))
    return out


def inject(rng: random.Random, fam: Family, people: list[Identity], day: datetime, day_no: int) -> list[Labelled]:
    humans = [p for p in people if p.kind == "workforce" and p.joins <= day_no and day_no not in p.away]
    agents = [p for p in people if p.kind == "agent" and day_no not in p.away]
    out: list[Labelled] = []

    def add(scenario: str, events: list[Event]) -> None:
        out.extend((e, scenario) for e in events)

    # Saturday and Sunday, a weekday-only person sends medium-sized confidential prompts, spaced out.
    who = rng.choice([h for h in humans if h.weekend == 0.0] or humans)
    saturday = day + timedelta(days=(5 - day.weekday()) % 7)
    add("weekend_staged_exfil", [_event(rng, fam, who, saturday + timedelta(hours=14 + i // 10, minutes=(i % 10) * 5),
                                        prompt_chars=rng.randint(5_000, 15_000), level="confidential",
                                        pii=rng.randint(3, 8)) for i in range(20)])
    # A service account silent since its second day runs 60 requests in 40 minutes.
    backup = next(p for p in people if p.id.endswith("backup"))
    t = day + timedelta(days=1, hours=2)
    add("service_account_wakes", [_event(rng, fam, backup, t + timedelta(seconds=40 * i)) for i in range(60)])
    # An SDK emitter (no gateway) sends restricted data to vendors the policy allows internal data only.
    internal_only = [p for p in fam.pairs() if fam.max_level[p[0]] == "internal"]
    add("restricted_via_internal_vendor", [
        _event(rng, fam, w, day + timedelta(hours=w.start_hour + rng.uniform(0, 7)), vendor=rng.choice(internal_only),
               level="restricted", pii=rng.randint(1, 6), decision="allow") for w in rng.sample(humans, 6)])
    # Jailbreak attempts over several turns: one or two markers, encoded payloads, links.
    who = rng.choice(humans)
    t = day + timedelta(days=2, hours=who.start_hour + 1)
    add("multi_turn_jailbreak", [_event(rng, fam, who, t + timedelta(minutes=3 * i), injection=rng.randint(1, 2),
                                        blobs=rng.randint(1, 2), urls=rng.randint(0, 2)) for i in range(6)])
    # An agent tries models it may not send its data to: denied again and again.
    bot = rng.choice(agents)
    t = day + timedelta(days=3, hours=4)
    add("agent_model_probing", [_event(rng, fam, bot, t + timedelta(seconds=25 * i), level="confidential",
                                       vendor=rng.choice(internal_only)) for i in range(12)])
    # A vendor answers with restricted data on a route whose vendor may receive internal data only.
    add("vendor_leaks_above_route", [
        _event(rng, fam, w, day + timedelta(days=1, hours=w.start_hour + rng.uniform(0, 6)),
               vendor=rng.choice(internal_only), level="internal", response_level="restricted")
        for w in rng.sample(humans, 6)])
    # A brand-new identity (no history) pastes credentials on its first requests.
    hire = Identity(f"new-hire-7@{fam.domain}", "workforce", None, [fam.pairs()[0]], 9, 17, 2.0, 6.0, 7.0,
                    [40, 60, 0, 0], fam.routes[0])
    t = day + timedelta(days=2, hours=9, minutes=30)
    add("new_hire_credentials", [_event(rng, fam, hire, t + timedelta(minutes=5 * i), secrets=rng.randint(1, 3),
                                        decision="allow", level="internal") for i in range(4)])
    # A person scripts the API: 50 short requests a few seconds apart, normal content.
    who = min(humans, key=lambda h: h.per_hour)
    t = day + timedelta(days=4, hours=who.start_hour + 2)
    add("scripted_requests", [_event(rng, fam, who, t + timedelta(seconds=3 * i), prompt_chars=rng.randint(200, 900))
                              for i in range(50)])
    return out


def heldout_traffic(seed: int, *, train_days: int = 14, test_days: int = 7,
                    start: datetime | None = None) -> tuple[list[Event], list[Labelled]]:
    """(training events, labelled test events) of the held-out family."""
    return family_traffic(HELDOUT, population, inject, seed, train_days=train_days, start=start, test_days=test_days)

