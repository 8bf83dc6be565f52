"""Incidents (pure): findings grouped per identity and detector family, paged once each.

A security team works incidents, not findings. Each finding joins the open incident of its
identity and family (the family of its highest-scoring detector, FAMILY); an incident closes
after QUIET_S without a finding, and a later finding opens a new incident linked to the one
before (`previous`). An incident pages once, when a rule first gives it the paging severity
(high): the model's score alone is a lead for the queue, never a page; its updates never page
again. A daily paging budget per organisation (the group's
`Pager`) holds back what would page once the day's budget is spent, into a digest, except for
the families named exempt.

Each incident also says which records stand behind it: its findings' records and, for the
families whose rules measure a window (a burst within a minute or an hour, a day's volume),
the identity's records in that window (`window_start`): what an analyst pulls to work it, and
what the evaluation counts as covered.

Time is the events' own (epoch seconds), never a clock: the same findings in the same order
give the same incidents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiaudit.detectors.features import DAY_S
from aiaudit.detectors.severity import BANDS, severity_for

MODEL = "isolation-forest"
# detector -> family: what one incident is about
FAMILY = {
    "sensitive_to_unapproved_vendor": "data_exposure", "secrets_sent": "data_exposure",
    "response_above_route": "data_exposure", "response_above_prompt": "data_exposure",
    "new_vendor_sensitive": "data_exposure",
    "prompt_injection": "injection",
    "request_burst": "volume", "denial_burst": "volume", "volume_above_profile": "volume",
    "new_identity_volume": "volume", "dormant_identity_burst": "volume",
    "odd_hours_run": "timing",
    "size_far_above_usual": "content",
    MODEL: "anomaly",
}
# detector -> how far before its finding the evidence it measured begins (seconds; "day": the UTC day)
WINDOW = {"request_burst": 60.0, "denial_burst": 600.0, "new_identity_volume": 3600.0,
          "dormant_identity_burst": 3600.0, "odd_hours_run": 3600.0, "volume_above_profile": "day"}
QUIET_S = 4 * 3600.0  # an incident closes after this long without a finding
PAGE_AT = "high"  # the severity at which an incident pages
RANK = {name: len(BANDS) - i for i, (name, _) in enumerate(BANDS)}  # medium 1, high 2, critical 3
MAX_RECORDS = 100  # record references kept per incident (its count says how many there were)


def family_of(detectors: Iterable[tuple[str, float]]) -> str:
    """The family of a finding: that of its highest-scoring detector ((name, score) pairs)."""
    name = max(detectors, key=lambda d: d[1])[0]
    return FAMILY.get(name, "other")


def window_start(detector: str, at: float) -> float:
    """Where the evidence `detector` measured at `at` begins."""
    w = WINDOW.get(detector)
    if w == "day":
        return at - at % DAY_S
    return at - float(w) if isinstance(w, float) else at


@dataclass
class Incident:
    uid: str
    identity: str
    family: str
    opened_at: float
    last_seen: float
    window_start: float  # the earliest record behind it (its first finding, or the window a rule measured)
    severity: str
    score: float
    findings: int = 0
    detectors: dict[str, int] = field(default_factory=dict)
    records: list[str] = field(default_factory=list)  # the findings' record references (first MAX_RECORDS)
    previous: str | None = None  # the incident of the same identity and family before this one
    rule_severity: str | None = None  # the highest severity a rule gave it (the model alone never pages)
    paged: bool = False
    held: bool = False  # would have paged, held back by the day's budget (in the digest)

    def open_at(self, now: float, quiet_s: float = QUIET_S) -> bool:
        return now - self.last_seen < quiet_s


def incident_uid(identity: str, family: str, opened_at: float) -> str:
    return hashlib.sha256(f"{identity}\n{family}\n{opened_at!r}".encode()).hexdigest()[:32]


@dataclass
class Pager:
    """The organisation's daily paging budget: at most `per_day` pages a UTC day; once spent,
    what would page is held back for the day's digest, except incidents of `exempt` families."""

    per_day: int | None = None  # None: no budget
    exempt: frozenset[str] = frozenset()
    day: int = -1
    paged_today: int = 0
    digest: list[str] = field(default_factory=list)  # incident uids held back today

    def allow(self, incident: Incident, at: float) -> bool:
        today = int(at // DAY_S)
        if today != self.day:
            self.day, self.paged_today, self.digest = today, 0, []
        if self.per_day is None or incident.family in self.exempt or self.paged_today < self.per_day:
            self.paged_today += 1
            return True
        self.digest.append(incident.uid)
        return False


@dataclass(frozen=True)
class Change:
    kind: str  # "opened", "updated"
    incident: Incident
    pages: bool  # this change pages (once per incident)


class Grouper:
    """Open incidents per (identity, family), in the order findings arrive."""

    def __init__(self, *, quiet_s: float = QUIET_S, pager: Pager | None = None) -> None:
        self.quiet_s = quiet_s
        self.pager = pager or Pager()
        self.open: dict[tuple[str, str], Incident] = {}
        self.closed: list[Incident] = []

    def add(self, identity: str, detectors: list[tuple[str, float]], severity: str, score: float, at: float,
            record: str) -> Change:
        """A finding of `identity` at `at` (its detectors as (name, score), its severity and score
        on the one scale, the reference of its record): the incident it joins or opens."""
        family = family_of(detectors)
        key = (identity, family)
        start = min(window_start(name, at) for name, _ in detectors)
        inc = self.open.get(key)
        previous = None
        if inc is not None and not inc.open_at(at, self.quiet_s):
            self.closed.append(inc)
            previous, inc = inc.uid, None
        kind = "updated"
        if inc is None:
            inc = Incident(incident_uid(identity, family, at), identity, family, at, at, start, severity, score,
                           previous=previous)
            self.open[key] = inc
            kind = "opened"
        inc.findings += 1
        inc.last_seen = max(inc.last_seen, at)
        inc.window_start = min(inc.window_start, start)
        if RANK[severity] > RANK[inc.severity]:
            inc.severity = severity
        inc.score = max(inc.score, score)
        rules = [severity_for(s) for name, s in detectors if name != MODEL]
        for r in rules:
            if r is not None and RANK[r] > RANK.get(inc.rule_severity or "", 0):
                inc.rule_severity = r
        for name, _ in detectors:
            inc.detectors[name] = inc.detectors.get(name, 0) + 1
        if len(inc.records) < MAX_RECORDS:
            inc.records.append(record)
        pages = False
        if not inc.paged and not inc.held and RANK.get(inc.rule_severity or "", 0) >= RANK[PAGE_AT]:
            pages = self.pager.allow(inc, at)
            inc.paged, inc.held = pages, not pages
        return Change(kind, inc, pages)

    def incidents(self) -> list[Incident]:
        """Every incident so far, closed ones first, each in the order it opened."""
        return sorted([*self.closed, *self.open.values()], key=lambda i: i.opened_at)
