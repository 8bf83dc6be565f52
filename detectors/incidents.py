"""Incidents (pure): findings grouped per identity and detector family, paged once each.

A security team works incidents, not findings. Each finding joins the open incident of its
identity and family (the family of its highest-scoring detector, FAMILY); an incident closes
after QUIET_S without a finding, and a later finding opens a new incident linked to the one
before (`previous`). An incident pages once, when a rule first gives it the paging severity
(high): the model's score alone is a lead for the queue, never a page; its updates never page
again. A daily paging budget per organisation (`Pager`) holds back what would page once the
day's budget is spent, into a digest, except incidents a rule named exempt fired in; past half
the budget the bar rises from high to critical (a running threshold: the rest of the day's
budget is kept for what matters most).

The scoring worker keeps each identity's open incidents in its transactional state (`join` on
the identity's own mapping, `incident_to_dict`/`incident_from_dict` for the state topic); the
delivery agent holds the organisation's `Pager`. `Grouper` is both together, in one process
(the evaluation).

Each incident also says which records stand behind it: its findings' records and, for the
families whose rules measure a window (a burst within a minute or an hour, a day's volume),
the identity's records in that window (`window_start`): what an analyst pulls to work it, and
what the evaluation counts as covered.

Time is the events' own (epoch seconds), never a clock: the same findings in the same order
give the same incidents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any

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
INCIDENT_CLASS_UID = 2005  # the OCSF class incidents travel as (Incident Finding)
MAX_DIGEST = 2000  # incidents a day's digest lists (the pager's state stays well under a Kafka message)
MAX_RECORDS = 20  # record references kept per incident (its count says how many there were; its window says where)


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
    paged: bool = False  # it paged (Grouper), or its page was asked for (the scoring worker: the pager decides)
    held: bool = False  # would have paged, held back by the day's budget (in the digest)

    def open_at(self, now: float, quiet_s: float = QUIET_S) -> bool:
        return now - self.last_seen < quiet_s

    def wants_page(self) -> bool:
        """A rule made it high or above, and it has not paged (or been held) yet."""
        return not self.paged and not self.held and RANK.get(self.rule_severity or "", 0) >= RANK[PAGE_AT]


def incident_uid(identity: str, family: str, opened_at: float) -> str:
    return hashlib.sha256(f"{identity}\n{family}\n{opened_at!r}".encode()).hexdigest()[:32]


def incident_to_dict(inc: Incident) -> dict[str, Any]:
    return asdict(inc)


def incident_from_dict(d: dict[str, Any]) -> Incident:
    """An incident from its JSON form (the scoring worker's state topic). Raises KeyError,
    TypeError or ValueError for anything else."""
    inc = Incident(str(d["uid"]), str(d["identity"]), str(d["family"]), float(d["opened_at"]), float(d["last_seen"]),
                   float(d["window_start"]), str(d["severity"]), float(d["score"]), int(d["findings"]),
                   {str(k): int(v) for k, v in d["detectors"].items()}, [str(r) for r in d["records"]][:MAX_RECORDS],
                   None if d.get("previous") is None else str(d["previous"]),
                   None if d.get("rule_severity") is None else str(d["rule_severity"]), bool(d["paged"]), bool(d["held"]))
    if inc.severity not in RANK or (inc.rule_severity is not None and inc.rule_severity not in RANK):
        raise ValueError(f"incident {inc.uid}: unknown severity")
    return inc


@dataclass
class Pager:
    """The organisation's daily paging budget: at most `per_day` pages a UTC day. Until half of it
    is spent an incident pages at high; after that only at critical (the running threshold); once
    it is all spent, nothing more. What does not page is held back for the day's digest, except an
    incident in which a rule named in `exempt` fired: that always pages."""

    per_day: int | None = None  # None: no budget
    exempt: frozenset[str] = frozenset()  # rule names
    day: int = -1
    paged_today: int = 0
    digest: list[str] = field(default_factory=list)  # incident uids held back today (the first MAX_DIGEST)
    held_today: int = 0  # every incident held back today, listed or not
    finished: list[tuple[int, list[str]]] = field(default_factory=list)  # past days' digests not yet taken
    paged: list[str] = field(default_factory=list)  # incident uids paged today (the first MAX_DIGEST)
    before: dict[str, list[str]] = field(default_factory=dict)  # the day before's "paged" and "held" uids

    def bar(self) -> str:
        """The severity an incident needs to page now."""
        if self.per_day is None or 2 * self.paged_today < self.per_day:
            return PAGE_AT
        return "critical"

    def roll(self, at: float) -> None:
        """Start the UTC day of `at` if it is a new one; a finished day's digest goes to `finished`."""
        today = int(at // DAY_S)
        if today > self.day:
            if self.digest:
                self.finished.append((self.day, self.digest))
            self.before = {"paged": self.paged, "held": self.digest} if today == self.day + 1 else {}
            self.day, self.paged_today, self.digest, self.held_today, self.paged = today, 0, [], 0, []

    def take_finished(self) -> list[tuple[int, list[str]]]:
        done, self.finished = self.finished, []
        return done

    def decided(self, uid: str) -> bool | None:
        """What was decided for incident `uid` today or the day before (a replay after a restart
        gets the same answer, though the budget has moved on since), or None."""
        for paged, held in ((self.paged, self.digest), (self.before.get("paged", []), self.before.get("held", []))):
            if uid in paged:
                return True
            if uid in held:
                return False
        return None

    def allow(self, incident: Incident, at: float) -> bool:
        self.roll(at)
        earlier = self.decided(incident.uid)
        if earlier is not None:
            return earlier
        severity = incident.rule_severity or incident.severity
        if self.exempt & set(incident.detectors) or self.per_day is None or (
                self.paged_today < self.per_day and RANK.get(severity, 0) >= RANK[self.bar()]):
            self.paged_today += 1
            if len(self.paged) < MAX_DIGEST:
                self.paged.append(incident.uid)
            return True
        self.held_today += 1
        if len(self.digest) < MAX_DIGEST:
            self.digest.append(incident.uid)
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day, "paged_today": self.paged_today, "digest": list(self.digest),
                "held_today": self.held_today, "paged": list(self.paged),
                "before": {k: list(v) for k, v in self.before.items()},
                "finished": [[d, list(u)] for d, u in self.finished]}

    def restore(self, d: dict[str, Any] | None) -> None:
        """Take the day's count and digest from a saved form (per_day and exempt stay as set)."""
        if d:
            self.day, self.paged_today = int(d["day"]), int(d["paged_today"])
            self.digest = [str(u) for u in d["digest"]][:MAX_DIGEST]
            self.held_today = int(d.get("held_today", len(self.digest)))
            self.finished = [(int(day), [str(u) for u in uids]) for day, uids in d.get("finished", [])]
            self.paged = [str(u) for u in d.get("paged", [])][:MAX_DIGEST]
            self.before = {k: [str(u) for u in d.get("before", {}).get(k, [])][:MAX_DIGEST] for k in ("paged", "held")
                           if k in d.get("before", {})}


@dataclass(frozen=True)
class Change:
    kind: str  # "opened", "updated"
    incident: Incident
    pages: bool  # this change pages (once per incident)
    closed: Incident | None = None  # the incident of the same identity and family this one follows, closed now


def join(open_: MutableMapping[str, Incident], identity: str, detectors: list[tuple[str, float]], severity: str,
         score: float, at: float, record: str, *, quiet_s: float = QUIET_S) -> Change:
    """A finding of `identity` at `at` (its detectors as (name, score), its severity and score on
    the one scale, the reference of its record) joins the identity's open incident of its family
    in `open_` (family -> incident, changed in place) or opens one. `pages` says whether the
    incident now wants its page (a rule made it high; once): the caller's pager decides."""
    family = family_of(detectors)
    start = min(window_start(name, at) for name, _ in detectors)
    inc = open_.get(family)
    previous, closed = None, None
    if inc is not None and not inc.open_at(at, quiet_s):
        closed, previous, inc = inc, inc.uid, None
    kind = "updated"
    if inc is None:
        inc = Incident(incident_uid(identity, family, at), identity, family, at, at, start, severity, score,
                       previous=previous)
        open_[family] = inc
        kind = "opened"
    inc.findings += 1
    inc.last_seen = max(inc.last_seen, at)
    inc.window_start = min(inc.window_start, start)
    if RANK[severity] > RANK[inc.severity]:
        inc.severity = severity
    inc.score = max(inc.score, score)
    for name, s in detectors:
        r = severity_for(s) if name != MODEL else None
        if r is not None and RANK[r] > RANK.get(inc.rule_severity or "", 0):
            inc.rule_severity = r
        inc.detectors[name] = inc.detectors.get(name, 0) + 1
    if len(inc.records) < MAX_RECORDS:
        inc.records.append(record)
    return Change(kind, inc, inc.wants_page(), closed)


class Grouper:
    """Open incidents per identity and family, paged through one Pager, in the order findings arrive."""

    def __init__(self, *, quiet_s: float = QUIET_S, pager: Pager | None = None) -> None:
        self.quiet_s = quiet_s
        self.pager = pager or Pager()
        self.open: dict[str, dict[str, Incident]] = {}
        self.closed: list[Incident] = []

    def add(self, identity: str, detectors: list[tuple[str, float]], severity: str, score: float, at: float,
            record: str) -> Change:
        change = join(self.open.setdefault(identity, {}), identity, detectors, severity, score, at, record,
                      quiet_s=self.quiet_s)
        if change.closed is not None:
            self.closed.append(change.closed)
        if not change.pages:
            return change
        inc = change.incident
        pages = self.pager.allow(inc, at)
        inc.paged, inc.held = pages, not pages
        return Change(change.kind, inc, pages, change.closed)

    def incidents(self) -> list[Incident]:
        """Every incident so far, closed ones first, each in the order it opened."""
        return sorted([*self.closed, *(i for by in self.open.values() for i in by.values())], key=lambda i: i.opened_at)
