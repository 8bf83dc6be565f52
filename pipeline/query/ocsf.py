"""A request record as an OCSF event a SIEM ingests without a parser of its own (pure).

OCSF 1.8.0, class API Activity (6003) with the AI Operation and Data Classification profiles: who
(actor.user, the authorisation in effect and the policy that decided), what (the API operation,
the AI model and its provider, tokens), how sensitive (the prompt's and the response's
classification as resources), the outcome (status: success when allowed, failure when denied,
with the decision's reasons), and the evidence: the signed payload verbatim as raw_data with its
SHA-256, and the record's integrity fields (origin, seq, leaf hash, signature, key id) under
unmapped.aiaudit, so an analyst can take any event back to `aiaudit verify` or `aiaudit proof`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from aiaudit.pipeline.ocsf import OCSF_VERSION

PROFILES = ["ai_operation", "data_classification"]
CLASS_UID = 6003  # API Activity
CATEGORY_UID = 6  # Application Activity
ACTIVITY_CREATE = 1  # a model call creates its answer
TYPE_UID = CLASS_UID * 100 + ACTIVITY_CREATE
STATUS = {"allow": (1, "Success"), "redact": (1, "Success"), "reroute": (1, "Success"), "deny": (2, "Failure")}
USER_TYPE = {"workforce": (1, "User"), "service": (3, "System"), "agent": (99, "Agent")}
# The contract's levels as OCSF confidentiality (0 Unknown, 1 Not Confidential, 2 Confidential,
# 5 Private, 6 Restricted).
CONFIDENTIALITY = {"public": (1, "Not Confidential"), "internal": (5, "Private"), "confidential": (2, "Confidential"),
                   "restricted": (6, "Restricted")}
# Category families as OCSF data categories (1 Personal, 3 Financial, 4 Business, 6 Security).
CATEGORY = {"pii": (1, "Personal"), "secret": (6, "Security"), "org": (4, "Business"), "financial": (3, "Financial")}
SHA256 = 3  # OCSF fingerprint algorithm_id


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(datetime.fromisoformat(str(value)).timestamp() * 1000)


def _classification(name: str, classification: dict[str, Any] | None) -> dict[str, Any]:
    """One resource (the prompt or the response) with its data classifications."""
    if not isinstance(classification, dict):
        return {"name": name, "type": f"ai_{name}"}
    level = str(classification.get("level") or "")
    conf_id, conf = CONFIDENTIALITY.get(level, (0, "Unknown"))
    found = []
    for category in classification.get("categories") or []:
        family = str(category).split(".", 1)[0]
        cat_id, cat = CATEGORY.get("financial" if category in ("pii.card", "pii.iban") else family, (99, "Other"))
        found.append({"category_id": cat_id, "category": cat, "confidentiality_id": conf_id, "confidentiality": conf,
                      "classifier_details": {"name": str(category), "type": "aiaudit"}})
    return {"name": name, "type": f"ai_{name}", "data_classifications": found or [
        {"category_id": 0, "category": "Unknown", "confidentiality_id": conf_id, "confidentiality": conf}]}


def api_activity(row: dict[str, Any], *, product_version: str) -> dict[str, Any]:
    """The OCSF API Activity event of one stored request record (a row with the evidence table's
    origin, seq, leaf_hash, kid, sig and payload: the signed bytes, as stored)."""
    payload = row["payload"]
    text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else str(payload)
    signed = json.loads(text)
    event = signed["event"]
    actor, authz = event.get("actor") or {}, event.get("authz") or {}
    decision = str(event.get("decision"))
    status_id, status = STATUS.get(decision, (99, "Other"))
    type_id, user_type = USER_TYPE.get(str(actor.get("type")), (0, "Unknown"))
    user: dict[str, Any] = {"uid": actor.get("id"), "name": actor.get("id"), "type_id": type_id, "type": user_type}
    if authz.get("role"):
        user["groups"] = [{"name": str(authz["role"]), "type": "role"}]
    policy = {"uid": event.get("policy_id"), "name": event.get("policy_id"), "version": event.get("policy_version")}
    usage_in, usage_out = int(event.get("gen_ai_usage_input_tokens") or 0), int(event.get("gen_ai_usage_output_tokens") or 0)
    reasons = [str(r) for r in event.get("decision_reasons") or []]
    out: dict[str, Any] = {
        "class_uid": CLASS_UID, "class_name": "API Activity", "category_uid": CATEGORY_UID,
        "category_name": "Application Activity", "activity_id": ACTIVITY_CREATE, "activity_name": "Create",
        "type_uid": TYPE_UID, "type_name": "API Activity: Create",
        "time": _ms(event.get("occurred_at")), "severity_id": 1, "severity": "Informational",
        "status_id": status_id, "status": status, "status_detail": f"{decision}: " + "; ".join(reasons),
        "message": f"{actor.get('id')} {event.get('gen_ai_operation_name')} {event.get('gen_ai_request_model')} "
                   f"at {event.get('gen_ai_provider_name')}: {decision}",
        "metadata": {"version": OCSF_VERSION, "profiles": PROFILES, "uid": event.get("event_id"),
                     "correlation_uid": event.get("trace_id"), "log_name": row["origin"], "sequence": int(row["seq"]),
                     "product": {"name": "aiaudit", "vendor_name": "aiaudit", "version": product_version},
                     "original_time": str(event.get("occurred_at"))},
        "actor": {"user": user, "authorizations": [{"decision": decision, "policy": policy}],
                  **({"invoked_by": str(actor["on_behalf_of"])} if actor.get("on_behalf_of") else {})},
        "api": {"operation": str(event.get("gen_ai_operation_name")),
                "service": {"name": str(event.get("gen_ai_provider_name"))}},
        "src_endpoint": {"name": str(event.get("emitter_id"))},
        "ai_model": {"name": str(event.get("gen_ai_request_model")), "ai_provider": str(event.get("gen_ai_provider_name")),
                     **({"version": str(event["gen_ai_response_model"])} if event.get("gen_ai_response_model") else {})},
        "message_context": {"prompt_tokens": usage_in, "completion_tokens": usage_out,
                            "total_tokens": usage_in + usage_out, "application": {"name": str(event.get("route"))}},
        "resources": [_classification("prompt", event.get("prompt_classification")),
                      _classification("response", event.get("response_classification"))],
        "duration": int(event.get("latency_us") or 0) // 1000,
        "raw_data": text,
        "raw_data_hash": {"algorithm_id": SHA256, "algorithm": "SHA-256",
                          "value": hashlib.sha256(text.encode("utf-8")).hexdigest()},
        "unmapped": {"aiaudit": {"origin": row["origin"], "seq": int(row["seq"]), "leaf_hash": row["leaf_hash"],
                                 "sig": row["sig"], "kid": row["kid"], "record_format": signed.get("v")}},
    }
    return out
