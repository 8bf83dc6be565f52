"""Which findings go where, how often, and what is recorded (pure).

A destination has filters (lowest severity, detectors, routes), a suppression window per
(identity, detector): a second finding of the same detector for the same identity inside the
window is recorded as suppressed, not sent; retries with exponential backoff and jitter, and
a dead letter after the last attempt. Every outcome is a delivery record (delivered where, when,
with what response; suppressed; failed; dead-lettered), keyed by a delivery uid derived from
the destination and the finding: a replay after a restart produces the same uid, so a
receiver, the records and the suppression state all see it once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from aiaudit.detectors.incidents import INCIDENT_CLASS_UID
from aiaudit.pipeline.deliver.formats import detectors_of

SEVERITY_RANK = {"medium": 1, "high": 2, "critical": 3}
SENDS = ("incidents", "findings", "requests")
Kind = Literal["webhook", "splunk_hec", "syslog", "chat"]
Outcome = Literal["delivered", "suppressed", "failed", "dead_lettered", "held"]  # held: by the paging budget


@dataclass(frozen=True)
class Destination:
    name: str
    kind: Kind
    min_severity: str = "medium"
    detectors: frozenset[str] | None = None  # None: any
    routes: frozenset[str] | None = None  # None: any
    suppress_s: float = 900.0  # per (identity, detector)
    max_attempts: int = 6
    backoff_s: float = 2.0  # first retry after this, doubling
    backoff_max_s: float = 300.0
    timeout_s: float = 10.0  # one attempt's longest wait for the receiver
    in_flight: int = 4  # attempts outstanding at once: a slow receiver waits in its own lane only
    # incidents: pages of incidents and the daily digest; findings: every finding; requests: every
    # request record as an OCSF API Activity event, in batches (deliver/forward.py)
    send: str = "incidents"

    def __post_init__(self) -> None:
        if self.min_severity not in SEVERITY_RANK:
            raise ValueError(f"destination {self.name}: min_severity must be one of {', '.join(SEVERITY_RANK)}")
        if self.max_attempts < 1 or self.suppress_s < 0 or self.backoff_s <= 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError(f"destination {self.name}: attempts >= 1, suppression >= 0, 0 < backoff <= backoff max")
        if self.send not in SENDS:
            raise ValueError(f"destination {self.name}: send must be one of {', '.join(SENDS)}")
        if self.send == "requests" and self.kind == "chat":
            raise ValueError(f"destination {self.name}: request events go to a SIEM (webhook, splunk_hec, syslog), "
                             "not to chat")
        if not (0 < self.timeout_s <= 120 and 1 <= self.in_flight <= 64):
            raise ValueError(f"destination {self.name}: 0 < timeout_s <= 120, 1 <= in_flight <= 64")


def accepts(dest: Destination, finding: dict[str, Any]) -> bool:
    """Whether `finding` passes the destination's filters."""
    if SEVERITY_RANK.get(str(finding.get("severity", "")).lower(), 0) < SEVERITY_RANK[dest.min_severity]:
        return False
    if dest.detectors is not None and not dest.detectors & set(detectors_of(finding)):
        return False
    route = (finding.get("unmapped") or {}).get("route")
    return dest.routes is None or route in dest.routes


def suppression_keys(finding: dict[str, Any]) -> list[str]:
    """One key per (identity, detector) the finding carries; none for an incident (its findings
    are already one incident, and it pages once)."""
    if finding.get("class_uid") == INCIDENT_CLASS_UID:
        return []
    actor = finding["actor"]["user"]["uid"]
    return [f"{actor}\n{d}" for d in detectors_of(finding)]


def suppressed(dest: Destination, last_sent: dict[str, float], keys: list[str], at: float) -> bool:
    """True when every (identity, detector) of the finding was sent within the window before `at`
    (a finding that adds a detector not yet sent for this identity goes out)."""
    return bool(keys) and all(k in last_sent and at - last_sent[k] < dest.suppress_s for k in keys)


def delivery_uid(dest: Destination, finding_uid: str) -> str:
    """Stable per (destination, finding): the same on every attempt and after every replay."""
    return hashlib.sha256(f"{dest.name}\n{finding_uid}".encode()).hexdigest()[:32]


def retry_after(dest: Destination, uid: str, attempt: int) -> float | None:
    """Seconds to wait before attempt `attempt + 1` (attempts count from 1), or None when
    `attempt` was the last: exponential, capped, with up to 20% jitter derived from the uid (so
    receivers are not hit in step, and a test can predict it)."""
    if attempt >= dest.max_attempts:
        return None
    base = min(dest.backoff_max_s, dest.backoff_s * 2 ** (attempt - 1))
    jitter = int(hashlib.sha256(f"{uid}:{attempt}".encode()).hexdigest()[:4], 16) / 0xFFFF * 0.2
    return float(base * (1 + jitter))


# A delivery's state, kept by the agent per delivery uid (a Faust table): "sending" is written
# and flushed before the side effect, so after a crash a delivery is either known not to have
# started, known done, or in doubt (sent once more, same delivery id: receivers drop repeats).
TERMINAL = ("delivered", "suppressed", "dead_lettered")
State = dict[str, Any]  # {"state": "sending" | "retrying" | one of TERMINAL, "attempt": n}


@dataclass(frozen=True)
class Step:
    action: Literal["skip", "suppress", "send"]
    attempt: int = 1
    in_doubt: bool = False  # a "sending" mark with no outcome: the previous attempt may have arrived


def first_step(dest: Destination, finding: dict[str, Any], prior: State | None, last_sent: dict[str, float],
               at: float) -> Step:
    """What to do with a finding read from the alerts topic (first time, or replayed after a restart)."""
    if prior is not None:
        if prior["state"] == "sending" and int(prior["attempt"]) == 1:
            return Step("send", 1, in_doubt=True)
        return Step("skip")  # done, or a retry is scheduled (a retry in flight is replayed from the retries topic)
    if not accepts(dest, finding):
        return Step("skip")
    if suppressed(dest, last_sent, suppression_keys(finding), at):
        return Step("suppress")
    return Step("send", 1)


def retry_step(prior: State | None, attempt: int, *, redrive: bool = False) -> Step:
    """What to do with a scheduled retry (attempt `attempt`), given the delivery's state now. A
    re-drive (`aiaudit alerts redeliver`) is one more attempt for a delivery still dead-lettered at
    the attempt before it; replayed after a crash mid-attempt it is an in-doubt resend, like any."""
    if redrive and prior is not None and prior["state"] == "dead_lettered" and int(prior["attempt"]) == attempt - 1:
        return Step("send", attempt)
    if prior is None or prior["state"] in TERMINAL:
        return Step("skip")
    if prior["state"] == "retrying" and int(prior["attempt"]) == attempt - 1:
        return Step("send", attempt)
    if prior["state"] == "sending" and int(prior["attempt"]) == attempt:
        return Step("send", attempt, in_doubt=True)
    return Step("skip")  # a replayed retry message that was already acted on


def after_attempt(dest: Destination, uid: str, outcome: str, attempt: int) -> tuple[str, float | None]:
    """The delivery's next state after an attempt, and the delay before the next one (when retrying)."""
    if outcome == "delivered":
        return "delivered", None
    delay = retry_after(dest, uid, attempt)
    return ("dead_lettered", None) if delay is None else ("retrying", delay)


@dataclass
class DeliveryRecord:
    delivery_uid: str
    finding_uid: str
    destination: str
    outcome: Outcome
    attempt: int
    at: float  # epoch seconds
    status: str = ""  # HTTP status, "sent" for syslog, or the error's kind
    response: str = ""  # the receiver's answer or the error, cut to 500 characters
    detail: dict[str, Any] = field(default_factory=dict)

    def message(self) -> dict[str, Any]:
        return {"delivery_uid": self.delivery_uid, "finding_uid": self.finding_uid, "destination": self.destination,
                "outcome": self.outcome, "attempt": self.attempt, "at": self.at, "status": self.status[:64],
                "response": self.response[:500], "detail": self.detail}
