"""OCSF Detection Finding (class 2004) for one scored record (pure).

The finding names the chain coordinates (origin, seq, leaf hash) of the evidence behind it,
so an analyst can pull that record and verify it; each detector that fired (the model, with
its version and explanation; each rule, with its version and reason) says why.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

from aiaudit.detectors.incidents import INCIDENT_CLASS_UID
from aiaudit.detectors.rules import RULES_VERSION, RuleHit
from aiaudit.pipeline.ocsf import ASSIGNEE_GROUP, FINDING_PROFILES, INCIDENT_PROFILES, OCSF_VERSION, PRODUCT

__all__ = ["OCSF_VERSION", "SEVERITY_ID", "detection_finding", "incident_finding", "finding_uid"]
CLASS_UID = 2004  # Detection Finding
CATEGORY_UID = 2  # Findings
ACTIVITY_CREATE = 1
TYPE_UID = CLASS_UID * 100 + ACTIVITY_CREATE
SEVERITY_ID = {"medium": 3, "high": 4, "critical": 5}
STATUS_NEW = 1


def finding_uid(origin: str, seq: int, model_version: str) -> str:
    """Stable id: the same record scored by the same model is the same finding (replays dedupe)."""
    return hashlib.sha256(f"{origin}\n{seq}\n{model_version}".encode()).hexdigest()[:32]


def detection_finding(*, origin: str, seq: int, leaf_hash: str, event: dict[str, Any], score: float, severity: str,
                      explanation: list[tuple[str, float]], model_version: str, detected_at_ms: int,
                      model_severity: str | None = None, rule_hits: list[RuleHit] | None = None,
                      model_score: float | None = None, rules_version: str = RULES_VERSION) -> dict[str, Any]:
    """One finding for one record, naming every detector that fired on it (`unmapped.detections`):
    the model (when its score reached a threshold: `model_severity`) and each rule hit. The
    analytic is the model when it fired, else the first rule."""
    actor = event["actor"]
    rule_hits = rule_hits or []
    if model_severity is None and not rule_hits:  # a caller from before rules: the severity is the model's
        model_severity = severity
    reasons = ", ".join(f"{name} (z {z:+.1f})" for name, z in explanation)
    detections = []
    parts = []
    if model_severity is not None:
        raw = model_score if model_score is not None else score
        why = f"IsolationForest score {raw:.3f} ({model_severity}); driven by {reasons or 'overall isolation'}"
        detections.append({"detector": "isolation-forest", "version": model_version, "severity": model_severity,
                           "reason": why})
        parts.append(why)
    for hit in rule_hits:
        detections.append({"detector": hit.rule, "version": rules_version, "severity": hit.severity, "reason": hit.reason})
        parts.append(f"rule {hit.rule} ({hit.severity}): {hit.reason}")
    if model_severity is not None:
        analytic = {"name": "isolation-forest", "type_id": 2, "type": "Behavioral", "version": model_version}
        title = f"Anomalous AI request by {actor['id']}"
    else:
        analytic = {"name": rule_hits[0].rule, "type_id": 1, "type": "Rule", "version": rules_version}
        title = f"AI request by {actor['id']}: {rule_hits[0].rule.replace('_', ' ')}"
    return {
        "class_uid": CLASS_UID, "class_name": "Detection Finding", "category_uid": CATEGORY_UID,
        "category_name": "Findings", "activity_id": ACTIVITY_CREATE, "activity_name": "Create", "type_uid": TYPE_UID,
        "time": detected_at_ms, "severity_id": SEVERITY_ID[severity], "severity": severity.capitalize(),
        "status_id": STATUS_NEW, "status": "New",
        "metadata": {"version": OCSF_VERSION, "product": dict(PRODUCT), "profiles": list(FINDING_PROFILES),
                     "uid": finding_uid(origin, seq, model_version)},
        "finding_info": {
            "uid": finding_uid(origin, seq, model_version),
            "title": title,
            "desc": "; ".join(parts),
            "types": ["AI request anomaly" if model_severity else "AI policy rule"], "analytic": analytic,
            "data_sources": ["aiaudit evidence chain"],
        },
        "actor": {"user": {"uid": actor["id"], "type": actor.get("type")},
                  **({"authorizations": [{"decision": event.get("decision")}]} if event.get("decision") else {})},
        "risk_score": round(score * 100),
        "unmapped": {
            "chain": {"origin": origin, "seq": seq, "leaf_hash": leaf_hash},
            "on_behalf_of": actor.get("on_behalf_of"),
            "event_id": event.get("event_id"), "occurred_at": event.get("occurred_at"),
            "vendor": event.get("gen_ai_provider_name"), "model": event.get("gen_ai_request_model"),
            "route": event.get("route"),
            # the finding's score on the one scale (detectors/severity.py), and the model's own
            "score": round(score, 6), "model_score": None if model_score is None else round(model_score, 6),
            "explanation": [{"feature": n, "z": z} for n, z in explanation],
            "detections": detections,
        },
    }


INCIDENT_ACTIVITY = {"create": (1, "Create"), "update": (2, "Update"), "close": (3, "Close")}
INCIDENT_STATUS = {"create": (1, "New"), "update": (1, "New"), "close": (5, "Closed")}
PRIORITY_ID = {"medium": 2, "high": 3, "critical": 4}


def _ms(t: float) -> int:
    return int(round(t * 1000))


def incident_finding(*, incident: Any, activity: str, page: bool, last: dict[str, Any], detected_at_ms: int,
                     rules_version: str, model_version: str) -> dict[str, Any]:
    """One incident update as an OCSF Incident Finding (class 2005): what it is about (identity,
    family, severity, its detectors and how often each fired), the span of the evidence behind it
    (start_time: where the first rule's window began; end_time: its latest finding), the records
    (chain coordinates) of its first findings and of the latest (`unmapped.chain`), and whether
    this update asks for its page (`is_alert`). `incident` is a detectors.incidents.Incident;
    `last` the latest finding that changed it (an OCSF Detection Finding)."""
    activity_id, activity_name = INCIDENT_ACTIVITY[activity]
    status_id, status = INCIDENT_STATUS[activity]
    family = incident.family.replace("_", " ")
    fired = ", ".join(f"{name} ×{n}" for name, n in sorted(incident.detectors.items(), key=lambda kv: -kv[1]))
    title = f"AI {family} incident: {incident.identity}"
    desc = (f"{incident.findings} finding(s) of {incident.identity} ({fired}) between "
            f"{_iso(incident.window_start)} and {_iso(incident.last_seen)}; highest {incident.severity}"
            f"{'' if incident.rule_severity else ' (the model alone: a lead, not a page)'}")
    info = {"uid": incident.uid, "title": title, "desc": desc, "types": [f"AI {family}"],
            "first_seen_time": _ms(incident.opened_at), "last_seen_time": _ms(incident.last_seen),
            "data_sources": ["aiaudit evidence chain"],
            "analytic": {"name": "aiaudit incident grouping", "type_id": 1, "type": "Rule", "version": rules_version},
            "related_events_count": incident.findings}
    return {
        "class_uid": INCIDENT_CLASS_UID, "class_name": "Incident Finding", "category_uid": CATEGORY_UID,
        "category_name": "Findings", "activity_id": activity_id, "activity_name": activity_name,
        "type_uid": INCIDENT_CLASS_UID * 100 + activity_id, "time": detected_at_ms,
        "severity_id": SEVERITY_ID[incident.severity], "severity": incident.severity.capitalize(),
        "status_id": status_id, "status": status, "priority_id": PRIORITY_ID[incident.severity],
        "priority": incident.severity.capitalize(), "assignee_group": dict(ASSIGNEE_GROUP),
        "start_time": _ms(incident.window_start), "end_time": _ms(incident.last_seen),
        "desc": desc,
        "metadata": {"version": OCSF_VERSION, "product": dict(PRODUCT), "uid": f"{incident.uid}:{incident.findings}:{activity}",
                     "profiles": list(INCIDENT_PROFILES)},
        "finding_info_list": [info],
        "actor": {"user": {"uid": incident.identity, "type": last["actor"]["user"].get("type")}},
        "unmapped": {
            "incident": {"uid": incident.uid, "identity": incident.identity, "family": incident.family,
                         "findings": incident.findings, "detectors": dict(incident.detectors),
                         "records": list(incident.records), "previous": incident.previous,
                         "rule_severity": incident.rule_severity, "score": round(incident.score, 6),
                         "opened_at": _iso(incident.opened_at), "window_start": _iso(incident.window_start),
                         "last_seen": _iso(incident.last_seen)},
            "page": page,
            "chain": last["unmapped"]["chain"], "route": last["unmapped"].get("route"),
            "score": round(incident.score, 6), "model_version": model_version,
            "detections": [{"detector": name} for name in sorted(incident.detectors)],
            "last_finding": last["finding_info"]["uid"],
        },
    }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
