"""The organisation's pager in the delivery agent (pure): which incident pages now, which waits
for the day's digest, and the digest itself.

The scoring worker asks for an incident's page once (`unmapped.page`); here the organisation's
daily budget (detectors/incidents.Pager: `pages_per_day`, the running threshold, the exempt
rules) decides. The pager's state is one JSON object per organisation in the delivery agent's
`pager` table (all of an organisation's incidents are in one partition of the incidents topic,
so one table entry sees them in order). A held incident is listed in the digest; a finished
day's digest stays in that state until it is delivered, so a restart sends it again (under the
same delivery ids) rather than never.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from aiaudit.detectors.features import DAY_S
from aiaudit.detectors.incidents import INCIDENT_CLASS_UID, MAX_DIGEST, RANK, Incident, Pager
from aiaudit.pipeline.ocsf import ASSIGNEE_GROUP, INCIDENT_PROFILES, OCSF_VERSION, PRODUCT
from aiaudit.pipeline.score.ocsf import SEVERITY_ID

MAX_HELD_LISTED = 500  # held incidents a digest lists by name (it counts all it knows of: up to MAX_DIGEST)


def incident_of(finding: dict[str, Any]) -> Incident:
    """The incident an Incident Finding carries, as far as the pager needs it."""
    d = finding["unmapped"]["incident"]
    severity = str(finding["severity"]).lower()
    rule = d.get("rule_severity")
    if severity not in RANK or (rule is not None and rule not in RANK) or not isinstance(d["detectors"], dict):
        raise ValueError("incident severity or detectors malformed")
    return Incident(str(d["uid"]), str(d["identity"]), str(d["family"]), 0.0, 0.0, 0.0, severity,
                    float(d["score"]), int(d["findings"]), {str(k): int(v) for k, v in d["detectors"].items()},
                    rule_severity=rule)


def decide(saved: dict[str, Any] | None, finding: dict[str, Any], *, per_day: int | None,
           exempt: Iterable[str]) -> tuple[bool, dict[str, Any], list[tuple[int, list[dict[str, Any]]]]]:
    """(whether the incident pages now, the pager's state after it, the finished days' digests
    still to deliver: (UTC day number, the held incidents))."""
    pager, held = _restored(saved, per_day, exempt)
    inc = incident_of(finding)
    pages = pager.allow(inc, finding["time"] / 1000)
    if not pages and len(held) < MAX_DIGEST:
        held[inc.uid] = {"uid": inc.uid, "identity": inc.identity[:256], "family": inc.family,
                         "severity": inc.rule_severity or inc.severity, "findings": inc.findings}
    keep = {u for _, uids in pager.finished for u in uids} | set(pager.digest)
    return pages, {"pager": pager.to_dict(), "held": {u: v for u, v in held.items() if u in keep}}, \
        _finished(pager, held)


def roll_day(saved: dict[str, Any], now: float, *, per_day: int | None,
             exempt: Iterable[str]) -> tuple[dict[str, Any], list[tuple[int, list[dict[str, Any]]]]]:
    """The pager's state once the clock says `now` (a day that is over becomes a finished
    digest), and the finished days' digests still to deliver."""
    pager, held = _restored(saved, per_day, exempt)
    pager.roll(now)
    return {"pager": pager.to_dict(), "held": held}, _finished(pager, held)


def _restored(saved: dict[str, Any] | None, per_day: int | None,
              exempt: Iterable[str]) -> tuple[Pager, dict[str, Any]]:
    """The pager as saved (with the budget as set now), and what it knows of the held incidents."""
    pager = Pager(per_day, frozenset(exempt))
    pager.restore((saved or {}).get("pager"))
    return pager, dict((saved or {}).get("held") or {})


def _finished(pager: Pager, held: dict[str, Any]) -> list[tuple[int, list[dict[str, Any]]]]:
    """The finished days' digests: each day and its held incidents."""
    return [(day, [held.get(u, {"uid": u}) for u in uids]) for day, uids in pager.finished]


def digest_delivered(saved: dict[str, Any] | None, day: int) -> dict[str, Any]:
    """The pager's state once the digest of `day` is delivered everywhere."""
    saved = dict(saved or {})
    pager = dict(saved.get("pager") or {})
    done = {u for d, uids in pager.get("finished", []) if d == day for u in uids}
    pager["finished"] = [[d, uids] for d, uids in pager.get("finished", []) if d != day]
    saved["pager"] = pager
    saved["held"] = {u: v for u, v in (saved.get("held") or {}).items() if u not in done}
    return saved


def digest_finding(org: str, day: int, held: list[dict[str, Any]], *, now_ms: int) -> dict[str, Any]:
    """The day's digest as an Incident Finding: the incidents the paging budget held back."""
    date = datetime.fromtimestamp(day * DAY_S, timezone.utc).date().isoformat()
    severity = max((h.get("severity", "high") for h in held), key=lambda s: RANK.get(s, 0), default="high")
    severity = severity if severity in RANK else "high"
    lines = [f"{h.get('severity', '?')} {h.get('family', '?')} incident of {h.get('identity', '?')} "
             f"({h.get('findings', '?')} findings) {h['uid']}" for h in held[:MAX_HELD_LISTED]]
    more = f"; and {len(held) - MAX_HELD_LISTED} more" if len(held) > MAX_HELD_LISTED else ""
    at_least = "at least " if len(held) >= MAX_DIGEST else ""  # the pager lists the first MAX_DIGEST of a day
    title = f"aiaudit paging digest for {date}: {at_least}{len(held)} incident(s) held back by the daily budget"
    uid = f"digest:{org}:{date}"
    return {
        "class_uid": INCIDENT_CLASS_UID, "class_name": "Incident Finding", "category_uid": 2,
        "category_name": "Findings", "activity_id": 99, "activity_name": "Digest",
        "type_uid": INCIDENT_CLASS_UID * 100 + 99, "time": now_ms,
        "severity_id": SEVERITY_ID[severity], "severity": severity.capitalize(), "status_id": 1, "status": "New",
        "assignee_group": dict(ASSIGNEE_GROUP), "start_time": int(day * DAY_S * 1000), "end_time": int((day + 1) * DAY_S * 1000) - 1,
        "desc": "; ".join(lines) + more,
        "metadata": {"version": OCSF_VERSION, "product": dict(PRODUCT), "uid": uid, "profiles": list(INCIDENT_PROFILES)},
        "finding_info_list": [{"uid": uid, "title": title, "desc": "; ".join(lines) + more,
                               "types": ["AI paging digest"], "related_events_count": len(held)}],
        "actor": {"user": {"uid": f"{org} paging budget", "type": "system"}},
        "unmapped": {"digest": {"organisation": org, "day": date, "held": held[:MAX_HELD_LISTED],
                                "count": len(held)},
                     "chain": {"origin": "", "seq": 0, "leaf_hash": ""}, "page": True,
                     "detections": [{"detector": "paging_digest"}]},
    }
