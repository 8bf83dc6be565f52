"""Chain record -> evidence-table row (pure). The verifier uses `columns_of` to check rows."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

from pipeline.chain.record import Record, parse_payload

EVIDENCE_COLUMNS = (
    "origin", "seq", "leaf_hash", "prev", "kid", "ts", "src_topic", "src_partition", "src_offset",
    "event_id", "emitter_id", "emitter_seq", "actor_type", "actor_id", "on_behalf_of", "role", "route",
    "operation", "provider", "model", "prompt_level", "prompt_categories", "response_level",
    "policy_id", "policy_version", "decision", "retention_scope", "input_tokens", "output_tokens",
    "latency_us", "payload", "sig",
)
DEAD_LETTER_COLUMNS = ("src_topic", "src_partition", "src_offset", "reason", "detail", "message_b64")


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def columns_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The typed columns a v1 payload implies (ts as its RFC 3339 text)."""
    ev = obj["event"]
    response = ev.get("response_classification")
    return {
        "origin": obj["origin"], "seq": obj["seq"], "prev": obj["prev"], "kid": obj["kid"], "ts": obj["ts"],
        "src_topic": obj["src"]["topic"], "src_partition": obj["src"]["partition"], "src_offset": obj["src"]["offset"],
        "event_id": ev["event_id"], "emitter_id": ev["emitter_id"], "emitter_seq": ev["emitter_seq"],
        "actor_type": ev["actor"]["type"], "actor_id": ev["actor"]["id"], "on_behalf_of": ev["actor"].get("on_behalf_of"),
        "role": ev["authz"]["role"], "route": ev["route"], "operation": ev.get("gen_ai_operation_name", ""),
        "provider": ev["gen_ai_provider_name"], "model": ev["gen_ai_request_model"],
        "prompt_level": ev["prompt_classification"]["level"],
        "prompt_categories": list(ev["prompt_classification"].get("categories", [])),
        "response_level": response["level"] if response else None,
        "policy_id": ev["policy_id"], "policy_version": ev["policy_version"], "decision": ev["decision"],
        "retention_scope": ev["retention_scope"], "input_tokens": ev.get("gen_ai_usage_input_tokens", 0),
        "output_tokens": ev.get("gen_ai_usage_output_tokens", 0), "latency_us": ev.get("latency_us", 0),
    }


def evidence_row(record: Record) -> list[Any]:
    """One row in EVIDENCE_COLUMNS order. Raises ValueError/KeyError on a payload that is not v1."""
    cols = columns_of(parse_payload(record.payload))
    cols["ts"] = parse_ts(cols["ts"])
    cols["leaf_hash"] = record.leaf_hash
    cols["payload"] = record.payload.decode("utf-8")
    cols["sig"] = base64.b64encode(record.sig).decode("ascii")
    return [cols[name] for name in EVIDENCE_COLUMNS]


def dead_letter_row(topic: str, partition: int, offset: int, reason: str, detail: str, message: bytes) -> list[Any]:
    return [topic, partition, offset, reason, detail, base64.b64encode(message).decode("ascii")]


def parse_src(header: str, fallback: tuple[str, int, int]) -> tuple[str, int, int]:
    """A dead letter's `topic/partition/offset` header; the message's own place when it is absent or bad."""
    parts = header.rsplit("/", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[1]), int(parts[2])
    return fallback


SCORE_COLUMNS = ("origin", "seq", "leaf_hash", "actor_id", "ts", "score", "severity", "model_version")
ALERT_COLUMNS = ("finding_uid", "detected_at", "severity", "actor_id", "origin", "seq", "leaf_hash", "score",
                 "model_version", "finding")


def score_row(obj: dict[str, Any]) -> list[Any]:
    """A scores-topic message (pipeline.score.step.Scored.row) -> scores-table row."""
    return [obj["origin"], int(obj["seq"]), obj["leaf_hash"], obj["actor_id"], parse_ts(obj["ts"]), float(obj["score"]),
            obj["severity"], obj["model_version"]]


def alert_row(finding: dict[str, Any], raw: bytes) -> list[Any]:
    """An OCSF finding from the alerts topic -> alerts-table row (the finding kept whole)."""
    chain = finding["unmapped"]["chain"]
    return [finding["finding_info"]["uid"], datetime.fromtimestamp(finding["time"] / 1000, timezone.utc),
            finding["severity"].lower(), finding["actor"]["user"]["uid"], chain["origin"], int(chain["seq"]),
            chain["leaf_hash"], float(finding["unmapped"]["score"]), finding["finding_info"]["analytic"]["version"],
            raw.decode("utf-8")]


POLICY_COLUMNS = ("policy_id", "policy_version", "declared_version", "canonical_json", "source_yaml", "loaded_at",
                  "gateway_id")
CONTENT_COLUMNS = ("event_id", "retention_scope", "expires_at", "key_b64", "prompt", "response")


def policy_row(obj: dict[str, Any]) -> list[Any]:
    """A policies-topic message (pipeline.gateway.policy.bundle_message) -> policies-table row."""
    return [obj["policy_id"], obj["policy_version"], obj["declared_version"], obj["canonical_json"], obj["source_yaml"],
            parse_ts(obj["loaded_at"]), obj["gateway_id"]]


def content_row(obj: dict[str, Any]) -> list[Any]:
    """A content-topic message (pipeline.gateway.event.content_message) -> content-table row."""
    return [obj["event_id"], obj["retention_scope"], parse_ts(obj["expires_at"]), obj["key_b64"], obj.get("prompt"),
            obj.get("response")]
