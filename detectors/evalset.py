"""The evaluation set (pure, seeded): labelled traffic no detector was tuned on or written beside.

Written for issue 22 before any of its detector changes, to a design of its own: it imports
nothing from `detectors/traffic.py` or `detectors/heldout.py` (a test holds it to that) and
shares none of their people, vendors, routes or scenario code. Where those draw each person's
hours and rate independently, here people belong to teams with a weekly rhythm (a weekday x
hour profile each member follows with a personal volume), agents serve teams on schedules
(batch windows, business hours, always on), and vendors are chosen by team policy.

Misuse is eight scenarios issue 22 names, each written here from its description, and two it
does not name (reported without a target, to see what the detectors do with the unforeseen):

    response_above_ceiling     answers more sensitive than the vendor may carry and than the prompt
    weekend_triple_volume      a person working a weekend at their usual hours, 3x their usual volume
    unseen_identity_volume     an identity never seen before, at a volume none of its team has
    dormant_identity_wakes     an identity quiet for over a week, suddenly busy
    slow_exfil_new_vendor      restricted data, a few prompts an hour over a day, to an approved
                               vendor this identity never used
    single_strong_injection    one strong injection marker in otherwise ordinary prompts
    secrets_unapproved_vendor  credentials pasted to a vendor the policy does not list
    agent_off_schedule         an agent at five times its rate outside its schedule
  not named by the issue:
    policy_probing             the same restricted prompt retried vendor after vendor after denials
    encoded_smuggling          ordinary-looking prompts carrying encoded blobs and long inputs

`evaluation_set(seed)` gives (training events, labelled test events, fresh-week events): two
weeks of normal traffic to learn from, two weeks to test on (normal plus the misuse, labelled
beside each event, never inside it), and the first week of a scorer that starts with no history
(normal traffic only) for the warm-up measure.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

Event = dict[str, Any]
Labelled = tuple[Event, str]

LEVEL_ORDER = ("public", "internal", "confidential", "restricted")
START = datetime(2026, 9, 7, tzinfo=timezone.utc)  # a Monday
TRAIN_DAYS, TEST_DAYS = 14, 14

VENDORS: dict[str, tuple[str, ...]] = {
    "vertex_ai": ("gemini-2.0-pro", "gemini-2.0-flash"),
    "ibm.watsonx": ("granite-3-8b",),
    "groq": ("llama-3.3-70b",),
    "azure.ai.inference": ("phi-4", "mistral-small"),
    "x_ai": ("grok-3",),
}
# What each vendor may receive (the policy's vendors: {name: {max_level}}).
CEILING = {"vertex_ai": "confidential", "ibm.watsonx": "restricted", "groq": "internal",
           "azure.ai.inference": "confidential", "x_ai": "internal"}
UNLISTED = ("paste-llm.example", "pl-1")
ROUTES = ("hr-assistant", "contract-review", "incident-bot", "sales-copilot", "data-pipeline")
SCENARIOS = ("response_above_ceiling", "weekend_triple_volume", "unseen_identity_volume", "dormant_identity_wakes",
             "slow_exfil_new_vendor", "single_strong_injection", "secrets_unapproved_vendor", "agent_off_schedule")
UNNAMED = ("policy_probing", "encoded_smuggling")


@dataclass(frozen=True)
class Team:
    name: str
    route: str
    vendors: tuple[tuple[str, str], ...]
    # Requests per hour for an average member, by weekday (0 Monday) and hour: the team's rhythm.
    rhythm: tuple[tuple[float, ...], ...]
    levels: tuple[int, int, int, int]  # weights of public, internal, confidential, restricted prompts
    prompt_chars: tuple[int, int]  # a member's usual prompt length range
    answer_chars: tuple[int, int]


@dataclass
class Member:
    id: str
    team: Team
    kind: str  # workforce | agent
    volume: float  # multiplier on the team rhythm
    vendors: tuple[tuple[str, str], ...]  # what this member uses (a subset of the team's)
    on_behalf_of: str | None = None
    off: frozenset[int] = frozenset()  # day numbers away


def _rhythm(hours: range, peak: float, weekend: float, lunch: int | None = None) -> tuple[tuple[float, ...], ...]:
    days = []
    for weekday in range(7):
        level = peak if weekday < 5 else peak * weekend
        row = []
        for h in range(24):
            rate = level if h in hours else 0.0
            if lunch is not None and h == lunch:
                rate *= 0.3
            row.append(rate)
        days.append(tuple(row))
    return tuple(days)


def _teams() -> list[Team]:
    v = {name: [(name, m) for m in models] for name, models in VENDORS.items()}
    return [
        Team("people-ops", "hr-assistant", (*v["vertex_ai"], *v["ibm.watsonx"]), _rhythm(range(8, 17), 2.5, 0.0, 12),
             (40, 45, 13, 2), (300, 2500), (600, 4000)),
        Team("legal", "contract-review", (*v["ibm.watsonx"], *v["azure.ai.inference"]),
             _rhythm(range(9, 19), 1.6, 0.05, 13), (10, 40, 42, 8), (2000, 14000), (1500, 6000)),
        Team("sre", "incident-bot", (*v["groq"], *v["azure.ai.inference"], *v["x_ai"]),
             _rhythm(range(7, 22), 3.0, 0.25), (35, 55, 10, 0), (200, 3000), (400, 3000)),
        Team("sales", "sales-copilot", (*v["vertex_ai"], *v["x_ai"]), _rhythm(range(8, 18), 4.0, 0.1, 12),
             (30, 55, 15, 0), (150, 1200), (500, 2500)),
    ]


def _agent_teams() -> list[tuple[Team, str]]:
    v = {name: [(name, m) for m in models] for name, models in VENDORS.items()}
    nightly = tuple(tuple(30.0 if 1 <= h < 4 else 0.0 for h in range(24)) for _ in range(7))
    office = _rhythm(range(8, 18), 12.0, 0.0)
    always = tuple(tuple(6.0 for _ in range(24)) for _ in range(7))
    return [
        (Team("etl-summariser", "data-pipeline", tuple(v["ibm.watsonx"]), nightly, (5, 60, 35, 0), (4000, 20000),
              (800, 2500)), "legal"),
        (Team("ticket-triage", "incident-bot", tuple(v["groq"]), office, (20, 75, 5, 0), (300, 1500), (100, 600)), "sre"),
        (Team("lead-scorer", "sales-copilot", tuple(v["vertex_ai"][1:]), always, (40, 60, 0, 0), (200, 800), (50, 300)),
         "sales"),
    ]


def _people(rng: random.Random) -> list[Member]:
    out: list[Member] = []
    for team, size in zip(_teams(), (27, 18, 30, 36)):
        for i in range(size):
            k = rng.randint(1, len(team.vendors))
            off: frozenset[int] = frozenset()
            if rng.random() < 0.2:  # a holiday somewhere in the four weeks
                first = rng.randint(0, TRAIN_DAYS + TEST_DAYS - 6)
                off = frozenset(range(first, first + rng.randint(3, 8)))
            out.append(Member(f"{team.name[:3]}.{i:02d}@initech.example", team, "workforce",
                              rng.lognormvariate(0.0, 0.45), tuple(rng.sample(team.vendors, k)), off=off))
    people = {m.team.name: m for m in out}
    for team, owner in _agent_teams():
        for i in range(2):
            out.append(Member(f"bot-{team.name}-{i}", team, "agent", rng.uniform(0.6, 1.4), team.vendors,
                              on_behalf_of=people[owner].id))
    # Quiet for the first ten days of the test, known from training: the dormant identity.
    sleeper = next(m for m in out if m.team.name == "legal" and not m.off)
    sleeper.off = frozenset(range(TRAIN_DAYS - 9, TRAIN_DAYS + TEST_DAYS))
    return out


class _Builder:
    """Events as the chain holds them (the contract's fields), with this set's own choices."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def event(self, who: Member, when: datetime, *, vendor: tuple[str, str] | None = None, level: str | None = None,
              prompt_chars: int | None = None, answer_chars: int | None = None, answer_level: str | None = None,
              secrets: int = 0, pii: int | None = None, injection: int = 0, urls: int | None = None,
              blobs: int = 0, decision: str | None = None, entropy: int | None = None) -> Event:
        r = self.rng
        provider, model = vendor or r.choice(who.vendors)
        if level is None:
            level = r.choices(LEVEL_ORDER, weights=who.team.levels)[0]
        prompt = prompt_chars if prompt_chars is not None else r.randint(*who.team.prompt_chars)
        answer = answer_chars if answer_chars is not None else r.randint(*who.team.answer_chars)
        if pii is None:
            pii = r.choice((0, 1, 1, 2)) if level in ("confidential", "restricted") else r.choice((0,) * 9 + (1,))
        ceiling = CEILING.get(provider, "public")
        if decision is None:
            decision = "deny" if LEVEL_ORDER.index(level) > LEVEL_ORDER.index(ceiling) else "allow"
        if decision == "deny":
            answer, answer_level = 0, None
        elif answer_level is None:
            # an answer is usually less sensitive than its prompt, never above it
            answer_level = LEVEL_ORDER[r.randint(0, LEVEL_ORDER.index(level))] if r.random() < 0.4 else \
                LEVEL_ORDER[min(LEVEL_ORDER.index(level), 1)]
        categories = (["pii.person_name"] if pii else []) + (["secret.api_key"] if secrets else [])
        return {
            "event_id": f"{r.getrandbits(128):032x}",
            "occurred_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor": {"type": who.kind, "id": who.id, "on_behalf_of": who.on_behalf_of, "untrusted_label": None},
            "route": who.team.route,
            "gen_ai_provider_name": provider, "gen_ai_request_model": model,
            "prompt_classification": {"level": level, "categories": categories},
            "response_classification": None if answer_level is None else {"level": answer_level, "categories": []},
            "decision": decision,
            "gen_ai_usage_input_tokens": max(1, prompt // 4), "gen_ai_usage_output_tokens": answer // 4,
            "latency_us": int(r.gammavariate(4.0, 250_000.0)),
            "content_features": {
                "prompt_chars": prompt, "response_chars": answer,
                "prompt_entropy_milli": entropy if entropy is not None else r.randint(3900, 4700),
                "prompt_pii_hits": pii, "prompt_secret_hits": secrets, "response_pii_hits": 0,
                "response_secret_hits": 0, "injection_markers": injection,
                "url_count": urls if urls is not None else r.choices((0, 1, 2), weights=(80, 15, 5))[0],
                "encoded_blob_count": blobs,
            },
        }


def _ordinary_day(b: _Builder, people: list[Member], day_no: int) -> list[Event]:
    """One day of everyone's habits, with the harmless oddities real days have."""
    r = b.rng
    day = START + timedelta(days=day_no)
    weekday = day.weekday()
    out = []
    for m in people:
        if day_no in m.off:
            continue
        for hour, rate in enumerate(m.team.rhythm[weekday]):
            lam = rate * m.volume
            if lam <= 0:
                continue
            n = _poisson(r, lam)
            for _ in range(n):
                when = day + timedelta(hours=hour, seconds=r.uniform(0, 3600))
                oddity = r.random()
                if oddity < 0.004 and m.kind == "workforce":  # a security training exercise: a marker or two
                    out.append(b.event(m, when, injection=r.choice((1, 1, 2))))
                elif oddity < 0.008:  # trying another approved model of the team
                    out.append(b.event(m, when, vendor=r.choice(m.team.vendors)))
                elif oddity < 0.011 and m.kind == "workforce":  # a restricted paste the gateway stops
                    out.append(b.event(m, when, level="restricted"))
                else:
                    out.append(b.event(m, when))
        # now and then someone works late, an hour past their team's day
        if m.kind == "workforce" and weekday < 5 and r.random() < 0.03:
            late = max(h for h, rate in enumerate(m.team.rhythm[weekday]) if rate > 0) + 2
            out.append(b.event(m, day + timedelta(hours=min(late, 23), minutes=r.randint(0, 59))))
    return out


def _poisson(r: random.Random, lam: float) -> int:
    n, p, limit = 0, 1.0, pow(2.718281828459045, -lam)
    while True:
        p *= r.random()
        if p <= limit:
            return n
        n += 1


def _misuse(b: _Builder, people: list[Member], ordinary: list[Event]) -> list[Labelled]:
    r = b.rng
    out: list[Labelled] = []
    humans = [m for m in people if m.kind == "workforce" and not m.off & set(range(TRAIN_DAYS, TRAIN_DAYS + TEST_DAYS))]
    agents = [m for m in people if m.kind == "agent"]

    def day(n: int) -> datetime:
        return START + timedelta(days=TRAIN_DAYS + n)

    def add(label: str, events: list[Event]) -> None:
        out.extend((e, label) for e in events)

    # Answers above what the vendor may carry and above the prompt (a vendor, or a retrieval plug-in, leaking).
    for m in r.sample(humans, 6):
        low = [p for p in m.vendors if CEILING[p[0]] in ("internal", "confidential")] or list(m.vendors)
        pair = r.choice(low)
        above = LEVEL_ORDER[LEVEL_ORDER.index(CEILING[pair[0]]) + 1]
        when = day(r.randint(0, 9)) + timedelta(hours=10, minutes=r.randint(0, 300))
        add("response_above_ceiling", [b.event(m, when + timedelta(minutes=7 * i), vendor=pair, level="internal",
                                               answer_level=above) for i in range(2)])
    # A weekend at the usual hours, three times the usual volume.
    worker = min((m for m in humans if m.team.name == "sales" and m.volume > 0.5), key=lambda m: m.volume)
    saturday = day(5)
    events = []
    for hour, rate in enumerate(worker.team.rhythm[0]):  # a weekday's rhythm, on the Saturday
        for _ in range(_poisson(r, rate * worker.volume * 3)):
            events.append(b.event(worker, saturday + timedelta(hours=hour, seconds=r.uniform(0, 3600))))
    add("weekend_triple_volume", events)
    # A never-seen identity, at volume from its first hour.
    stranger = Member("ext.consult.07@initech.example", _teams()[1], "workforce", 1.0, _teams()[1].vendors[:1])
    t = day(3) + timedelta(hours=9)
    add("unseen_identity_volume", [b.event(stranger, t + timedelta(seconds=90 * i)) for i in range(60)])
    # The dormant identity wakes, busy.
    sleeper = next(m for m in people if m.team.name == "legal" and TRAIN_DAYS + TEST_DAYS - 1 in m.off)
    t = day(10) + timedelta(hours=8)
    add("dormant_identity_wakes", [b.event(sleeper, t + timedelta(seconds=r.randint(60, 240) * i)) for i in range(35)])
    # Slow exfiltration: restricted data, a few an hour, to an approved vendor new to this person.
    used = {(e["actor"]["id"], e["gen_ai_provider_name"]) for e in ordinary}
    thief = next(m for m in humans if m.team.name == "people-ops" and (m.id, "ibm.watsonx") not in used)
    t = day(8) + timedelta(hours=8)
    add("slow_exfil_new_vendor", [b.event(thief, t + timedelta(minutes=22 * i + r.randint(0, 9)),
                                          vendor=("ibm.watsonx", "granite-3-8b"), level="restricted", pii=r.randint(2, 6),
                                          prompt_chars=r.randint(3000, 9000)) for i in range(24)])
    # One strong injection marker in an otherwise ordinary prompt, from several people.
    for m in r.sample(humans, 8):
        when = day(r.randint(0, 13)) + timedelta(hours=11, minutes=r.randint(0, 200))
        add("single_strong_injection", [b.event(m, when, injection=3, urls=1)])
    # Credentials pasted to an unlisted vendor (an SDK emitter: nothing denies it).
    for m in r.sample(humans, 5):
        when = day(r.randint(0, 13)) + timedelta(hours=14, minutes=r.randint(0, 120))
        add("secrets_unapproved_vendor", [b.event(m, when, vendor=UNLISTED, level="restricted", secrets=r.randint(1, 3),
                                                  decision="allow")])
    # An agent at five times its rate outside its schedule.
    bot = next(a for a in agents if a.team.name == "ticket-triage")
    t = day(6) + timedelta(hours=2)  # a Sunday night
    add("agent_off_schedule", [b.event(bot, t + timedelta(seconds=60 * i)) for i in range(60)])
    # Not named by the issue: probing the policy vendor by vendor with the same restricted prompt.
    prober = r.choice([m for m in humans if m.team.name == "sales"])
    t = day(12) + timedelta(hours=15)
    chars = r.randint(2000, 4000)
    probe = [b.event(prober, t + timedelta(minutes=2 * i), vendor=pair, level="restricted", prompt_chars=chars, pii=3)
             for i, pair in enumerate(r.sample([(v, ms[0]) for v, ms in VENDORS.items()], len(VENDORS)))]
    add("policy_probing", probe)
    # Not named by the issue: encoded blobs smuggled in long, high-entropy prompts at a normal pace.
    smuggler = r.choice([m for m in humans if m.team.name == "sre"])
    t = day(9) + timedelta(hours=10)
    add("encoded_smuggling", [b.event(smuggler, t + timedelta(minutes=35 * i), blobs=r.randint(2, 5),
                                      prompt_chars=r.randint(12000, 30000), entropy=r.randint(5600, 6000))
                              for i in range(8)])
    return out


def evaluation_set(seed: int = 2026) -> tuple[list[Event], list[Labelled], list[Event]]:
    """(training events, labelled test events, a fresh scorer's first week), each in time order."""
    rng = random.Random(seed)
    people = _people(rng)
    b = _Builder(rng)
    train = [e for d in range(TRAIN_DAYS) for e in _ordinary_day(b, people, d)]
    test: list[Labelled] = [(e, "normal") for d in range(TRAIN_DAYS, TRAIN_DAYS + TEST_DAYS)
                            for e in _ordinary_day(b, people, d)]
    test += _misuse(b, people, train + [e for e, _ in test])
    fresh = [e for e in train if e["occurred_at"] < (START + timedelta(days=7)).strftime("%Y-%m-%dT")]
    by_time = sorted(test, key=lambda pair: pair[0]["occurred_at"])
    return sorted(train, key=lambda e: e["occurred_at"]), by_time, sorted(fresh, key=lambda e: e["occurred_at"])


def digest(seed: int = 2026) -> str:
    """SHA-256 over the set's canonical bytes: recorded when the set was committed, so that a
    change to it (which would let it be tuned to) shows."""
    train, test, fresh = evaluation_set(seed)
    h = hashlib.sha256()
    for part in (train, [{"label": label, "event": e} for e, label in test], fresh):
        for item in part:
            h.update(orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
            h.update(b"\n")
    return h.hexdigest()
