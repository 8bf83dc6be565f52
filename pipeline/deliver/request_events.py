"""Request events for a SIEM (pure): a batch of request records, each an OCSF API Activity event
(query/ocsf.py), in the form of the destination that takes them (`send: requests`).

A batch is the records one poll read from one chain partition, in seq order; it is delivered
under a uid derived from the destination, the chain and the first and last seq, and each event
carries its own uid (the request's event id, `metadata.uid`), so a SIEM drops a repeat either way.

- Splunk HEC: the batch's events stacked in one POST (HEC reads concatenated event objects),
  sourcetype `ocsf:api_activity`.
- Webhook: one signed POST (the findings' HMAC scheme) of `{"delivery", "requests", "events"}`.
- Syslog: one RFC 5424 message per event; an event over the message limit goes without its
  `raw_data` (the signed payload; its SHA-256 stays, and `aiaudit proof` gives the record).
- Chat: not for request events (the destinations file refuses `send: requests` there).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

import orjson

from aiaudit.pipeline.deliver.formats import (
    DELIVERY_HEADER,
    MAX_SYSLOG_BYTES,
    SIGNATURE_HEADER,
    SYSLOG_ENTERPRISE_ID,
    SYSLOG_FACILITY,
    TIMESTAMP_HEADER,
    _header_token,
    _mac,
    _sd_value,
)

SOURCETYPE = "ocsf:api_activity"
SYSLOG_INFO, SYSLOG_NOTICE = 6, 5  # allowed; denied


def batch_uid(destination: str, origin: str, first_seq: int, last_seq: int) -> str:
    return hashlib.sha256(f"{destination}\nrequests\n{origin}\n{first_seq}\n{last_seq}".encode()).hexdigest()[:32]


def batch_label(origin: str, first_seq: int, last_seq: int) -> str:
    """What a batch's delivery records name (their `finding_uid`, at most 128 characters)."""
    tail = f"#{first_seq}-{last_seq}"
    return "requests:" + origin[:128 - 9 - len(tail)] + tail


def hec_body(events: list[dict[str, Any]], *, host: str = "aiaudit") -> bytes:
    return b"".join(orjson.dumps({"time": round(int(e["time"]) / 1000, 3), "host": host, "source": "aiaudit",
                                  "sourcetype": SOURCETYPE, "event": e}) for e in events)


def webhook_batch(events: list[dict[str, Any]], secret: bytes, uid: str, now: float, *, origin: str, first_seq: int,
                  last_seq: int) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps({"delivery": uid, "requests": {"origin": origin, "first_seq": first_seq,
                                                       "last_seq": last_seq, "count": len(events)},
                         "events": events})
    ts = str(int(now))
    return body, {"Content-Type": "application/json", TIMESTAMP_HEADER: ts, DELIVERY_HEADER: uid,
                  SIGNATURE_HEADER: "v1=" + _mac(secret, ts, body)}


def syslog_request(event: dict[str, Any], *, hostname: str, app: str = "aiaudit") -> bytes:
    """One request event as an RFC 5424 message: structured data naming the request and its record,
    the OCSF event as JSON in MSG (without raw_data when the whole would not fit)."""
    integrity = event["unmapped"]["aiaudit"]
    pri = SYSLOG_FACILITY * 8 + (SYSLOG_NOTICE if event.get("status_id") == 2 else SYSLOG_INFO)
    stamp = datetime.fromtimestamp(int(event["time"]) / 1000, timezone.utc).isoformat(timespec="milliseconds")
    params = {"uid": event["metadata"].get("uid"), "actor": event["actor"]["user"].get("uid"),
              "origin": integrity["origin"], "seq": integrity["seq"], "leaf": integrity["leaf_hash"]}
    sd = f"[aiaudit@{SYSLOG_ENTERPRISE_ID} " + " ".join(f'{k}="{_sd_value(v)}"' for k, v in params.items()) + "]"
    head = (f"<{pri}>1 {stamp.replace('+00:00', 'Z')} {_header_token(hostname, 255)} {_header_token(app, 48)} - "
            f"ocsf6003 {sd} ").encode("utf-8")
    room = MAX_SYSLOG_BYTES - len(head) - 3
    msg = orjson.dumps(event)
    if len(msg) > room:
        slim = {k: v for k, v in event.items() if k != "raw_data"}
        msg = orjson.dumps({**slim, "unmapped": {**event["unmapped"], "raw_data_omitted": True}})
    if len(msg) > room:
        msg = orjson.dumps({"metadata": {"uid": event["metadata"].get("uid")}, "unmapped": {"aiaudit": integrity},
                            "truncated": True})
    return head + b"\xef\xbb\xbf" + msg
