"""What a finding looks like at each destination (pure): signed webhook, Splunk HEC, syslog
(RFC 5424, octet-counted for TCP/TLS), and a chat message for humans (Slack-compatible).

Every form carries the finding's uid and its chain coordinates (origin, seq, leaf hash), so the
analyst who receives it can pull the record and verify it. Text taken from a finding (actor ids,
reasons, vendor names: some of it came from an emitter) is escaped for the form it lands in:
syslog structured-data parameter values, Slack's mrkdwn control sequences, and control
characters everywhere.

Webhook signatures (HMAC-SHA256 over `<timestamp>.<body>`, the shared secret per destination):
a receiver checks them with `verify_webhook`, which refuses a body or timestamp changed in
transit and a delivery outside the replay window; inside the window a receiver drops repeats
by the delivery id (`X-Aiaudit-Delivery`), which is the same on every retry of a delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timezone
from typing import Any, cast

import orjson

from aiaudit.detectors.incidents import INCIDENT_CLASS_UID

SIGNATURE_HEADER = "X-Aiaudit-Signature"
TIMESTAMP_HEADER = "X-Aiaudit-Timestamp"
DELIVERY_HEADER = "X-Aiaudit-Delivery"
REPLAY_WINDOW_S = 300
SYSLOG_ENTERPRISE_ID = 32473  # RFC 5612's documentation enterprise number, until one is registered
SYSLOG_FACILITY = 13  # log audit (RFC 5424 table 1)
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4}  # crit, err, warning
# RFC 5424 6.1: receivers SHOULD take 2048 and MAY take more; rsyslog takes 8,096 by default. The
# whole message, header included, stays within it, counted in bytes; the JSON is cut first.
MAX_SYSLOG_BYTES = 8096
MAX_SD_VALUE_BYTES = 600  # one structured-data value (an actor id may be 4,096 characters)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class WebhookRefused(ValueError):
    """A webhook delivery whose signature, timestamp or shape does not check out."""


def info_of(finding: dict[str, Any]) -> dict[str, Any]:
    """What the finding is (its uid, title, description): a Detection Finding's `finding_info`,
    an Incident Finding's (class 2005) first `finding_info_list` entry, the incident itself."""
    if finding.get("class_uid") == INCIDENT_CLASS_UID:
        info = finding["finding_info_list"][0]
    else:
        info = finding["finding_info"]
    if not isinstance(info, dict):
        raise TypeError("finding info is not an object")
    return info


def uid_of(finding: dict[str, Any]) -> str:
    """The uid a finding or incident is delivered (and its deliveries recorded) under."""
    return str(info_of(finding)["uid"])


def detectors_of(finding: dict[str, Any]) -> list[str]:
    return [str(d.get("detector", "?")) for d in (finding.get("unmapped") or {}).get("detections") or []] or \
        [str(info_of(finding)["analytic"]["name"])]


def summary(finding: dict[str, Any]) -> dict[str, Any]:
    """The fields every destination shows."""
    chain = finding["unmapped"]["chain"]
    info = info_of(finding)
    return {"uid": info["uid"], "severity": finding["severity"].lower(),
            "title": info["title"], "why": info.get("desc", ""),
            "actor": finding["actor"]["user"]["uid"], "detectors": detectors_of(finding),
            "origin": chain["origin"], "seq": int(chain["seq"]), "leaf_hash": chain["leaf_hash"],
            "route": (finding.get("unmapped") or {}).get("route"), "time_ms": int(finding["time"])}


MAX_FINDING_BYTES = 1_048_576


class Unreadable(ValueError):
    """An alerts-topic message that is not a finding this agent can deliver."""


def parse_finding(value: bytes | None) -> dict[str, Any]:
    """The finding in an alerts-topic message, or Unreadable saying why (bounded, a JSON object
    with the fields every destination shows)."""
    if not value or len(value) > MAX_FINDING_BYTES:
        raise Unreadable(f"empty or larger than {MAX_FINDING_BYTES:,} bytes")
    try:
        finding = orjson.loads(value)
        s = summary(finding)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Unreadable(f"not a detection finding ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not (isinstance(s["uid"], str) and 0 < len(s["uid"]) <= 128 and isinstance(s["actor"], str)
            and 0 < len(s["actor"]) <= 4096 and type(finding["time"]) is int and 0 < finding["time"] < 10**14
            and isinstance(s["origin"], str) and isinstance(s["leaf_hash"], str)):
        raise Unreadable("finding uid, actor, time or record coordinates missing or malformed")
    return cast(dict[str, Any], finding)


# --- signed webhook ---------------------------------------------------------------------


def webhook_request(finding: dict[str, Any], secret: bytes, delivery_uid: str, now: float) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a signed webhook delivery: the finding as JSON, whole."""
    body = orjson.dumps({"delivery": delivery_uid, "finding": finding})
    ts = str(int(now))
    return body, {"Content-Type": "application/json", TIMESTAMP_HEADER: ts, DELIVERY_HEADER: delivery_uid,
                  SIGNATURE_HEADER: "v1=" + _mac(secret, ts, body)}


def _mac(secret: bytes, ts: str, body: bytes) -> str:
    return hmac.new(secret, ts.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify_webhook(secret: bytes, headers: dict[str, str], body: bytes, now: float,
                   window_s: int = REPLAY_WINDOW_S) -> dict[str, Any]:
    """The delivery's JSON if its signature verifies and its timestamp is within `window_s` of
    `now` (either way: a clock ahead is refused too). Raises WebhookRefused saying why."""
    lower = {k.lower(): v for k, v in headers.items()}
    ts, sig = lower.get(TIMESTAMP_HEADER.lower(), ""), lower.get(SIGNATURE_HEADER.lower(), "")
    delivery = lower.get(DELIVERY_HEADER.lower())
    if not ts.isascii() or not ts.isdigit() or len(ts) > 12:
        raise WebhookRefused("missing or malformed timestamp")
    if abs(now - int(ts)) > window_s:
        raise WebhookRefused(f"timestamp {ts} is outside the {window_s}s replay window")
    if not sig.isascii() or len(sig) > 200 or not sig.startswith("v1=") \
            or not hmac.compare_digest(sig[3:].encode("ascii"), _mac(secret, ts, body).encode("ascii")):
        raise WebhookRefused("signature does not verify")
    if not delivery or len(delivery) > 256:
        raise WebhookRefused("missing or malformed delivery id")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WebhookRefused("body is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("delivery") != lower.get(DELIVERY_HEADER.lower()):
        raise WebhookRefused("the delivery id in the body is not the header's")
    return doc


# --- Splunk HTTP Event Collector ----------------------------------------------------------


def splunk_hec_body(finding: dict[str, Any], *, index: str | None = None, host: str = "aiaudit") -> bytes:
    """One HEC event (POST /services/collector/event, `Authorization: Splunk <token>`)."""
    event: dict[str, Any] = {"time": round(int(finding["time"]) / 1000, 3), "host": host, "source": "aiaudit",
                             "sourcetype": "ocsf:incident_finding" if finding.get("class_uid") == INCIDENT_CLASS_UID
                             else "ocsf:detection_finding", "event": finding}
    if index:
        event["index"] = index
    return orjson.dumps(event)


# --- syslog (RFC 5424) ----------------------------------------------------------------------


def cut_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, at a character boundary, marked with '…' when cut."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max(0, max_bytes - 3)].decode("utf-8", "ignore") + "…"


def _sd_value(value: object) -> str:
    """An SD-PARAM value (RFC 5424 6.3.3): '"', '\\' and ']' escaped, control characters dropped,
    at most MAX_SD_VALUE_BYTES (cut and marked)."""
    text = cut_utf8(_CONTROL.sub("", str(value)), MAX_SD_VALUE_BYTES)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_token(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or NILVALUE."""
    token = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return token or "-"


def syslog_message(finding: dict[str, Any], *, hostname: str, app: str = "aiaudit", procid: str = "-") -> bytes:
    """An RFC 5424 message: PRI from log-audit and the severity, structured data naming the
    finding and its record, the finding as JSON in MSG (cut to fit MAX_SYSLOG_BYTES)."""
    s = summary(finding)
    pri = SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY.get(s["severity"], 4)
    stamp = datetime.fromtimestamp(s["time_ms"] / 1000, timezone.utc).isoformat(timespec="milliseconds")
    stamp = stamp.replace("+00:00", "Z")
    params = {"uid": s["uid"], "severity": s["severity"], "actor": s["actor"], "detectors": ",".join(s["detectors"]),
              "origin": s["origin"], "seq": s["seq"], "leaf": s["leaf_hash"]}
    sd = f"[aiaudit@{SYSLOG_ENTERPRISE_ID} " + " ".join(f'{k}="{_sd_value(v)}"' for k, v in params.items()) + "]"
    head = (f"<{pri}>1 {stamp} {_header_token(hostname, 255)} {_header_token(app, 48)} {_header_token(procid, 128)} "
            f"ocsf2004 {sd} ").encode("utf-8")
    msg = orjson.dumps(finding)
    room = MAX_SYSLOG_BYTES - len(head) - 3
    if len(msg) > room:  # keep what identifies the finding; the whole one is in the alerts table
        title = cut_utf8(_CONTROL.sub(" ", s["title"]), 600)
        # JSON escapes a control or quote character in up to 6 bytes: leave room for that.
        why = cut_utf8(_CONTROL.sub(" ", s["why"]), max(0, (room - 800 - len(title.encode())) // 2))
        msg = orjson.dumps({"uid": s["uid"], "title": title, "why": why, "truncated": True})
        if len(msg) > room:
            msg = orjson.dumps({"uid": s["uid"], "truncated": True})
    return head + b"\xef\xbb\xbf" + msg  # BOM: MSG is UTF-8 (RFC 5424 6.4)


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 3.4.1 framing for syslog over TCP and TLS (RFC 5425): `LEN SP MSG`."""
    return str(len(message)).encode("ascii") + b" " + message


# --- chat (Slack-compatible incoming webhook) ---------------------------------------------


def _mrkdwn(text: object, limit: int = 300) -> str:
    """Text shown, never interpreted: Slack's control characters escaped (so an actor id cannot
    write `<!channel>` or a link), control characters made spaces."""
    plain = _CONTROL.sub(" ", str(text))[:limit]
    return plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_message(finding: dict[str, Any], *, alert_command: str | None = None) -> bytes:
    s = summary(finding)
    if alert_command is None:
        incident = finding.get("class_uid") == INCIDENT_CLASS_UID
        alert_command = "aiaudit incidents show" if incident else "aiaudit alerts history"
    icon = {"critical": ":red_circle:", "high": ":large_orange_circle:"}.get(s["severity"], ":large_yellow_circle:")
    text = (f"{icon} *{s['severity'].upper()}* {_mrkdwn(s['title'], 150)}\n"
            f"*Actor* {_mrkdwn(s['actor'], 120)}   *Detectors* {_mrkdwn(', '.join(s['detectors']), 150)}\n"
            f"*Why* {_mrkdwn(s['why'], 400)}\n"
            f"*Record* `{_mrkdwn(s['origin'], 120)}#{s['seq']}` leaf `{_mrkdwn(s['leaf_hash'][:16], 16)}…`\n"
            f"`{alert_command} {_mrkdwn(s['uid'], 64)}`")
    return orjson.dumps({"text": text, "unfurl_links": False, "unfurl_media": False})
