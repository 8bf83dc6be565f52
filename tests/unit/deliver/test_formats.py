"""Each destination's form as its receiver parses it (pure): webhook signatures and replay window,
Splunk HEC, RFC 5424 syslog, chat, hostile text escaped for where it lands; what the agent takes
from the alerts topic."""

from __future__ import annotations

import re

import orjson
import pytest

from aiaudit.pipeline.deliver.formats import (
    DELIVERY_HEADER,
    MAX_FINDING_BYTES,
    MAX_SYSLOG_BYTES,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Unreadable,
    WebhookRefused,
    chat_message,
    octet_counted,
    parse_finding,
    splunk_hec_body,
    syslog_message,
    verify_webhook,
    webhook_request,
)
from tests.unit.deliver.findings import SECRET, finding


def test_a_signed_webhook_verifies_and_carries_the_finding_whole():
    f = finding()
    body, headers = webhook_request(f, SECRET, "d-1", now=1_795_950_000)
    doc = verify_webhook(SECRET, headers, body, now=1_795_950_030)
    assert doc == {"delivery": "d-1", "finding": f} and headers[DELIVERY_HEADER] == "d-1"


@pytest.mark.parametrize("tamper, why", [
    (lambda b, h: (b.replace(b"alice", b"mallo"), h), "signature"),
    (lambda b, h: (b, {**h, TIMESTAMP_HEADER: str(int(h[TIMESTAMP_HEADER]) + 1)}), "signature"),
    (lambda b, h: (b, {**h, SIGNATURE_HEADER: "v1=" + "0" * 64}), "signature"),
    (lambda b, h: (b, {k: v for k, v in h.items() if k != SIGNATURE_HEADER}), "signature"),
    (lambda b, h: (b, {**h, TIMESTAMP_HEADER: "-5"}), "timestamp"),
    (lambda b, h: (b, {**h, DELIVERY_HEADER: "d-2"}), "delivery id"),
    (lambda b, h: (b, {**h, TIMESTAMP_HEADER: "\u00b2" * 10}), "timestamp"),  # isdigit, yet no int
    (lambda b, h: (b, {**h, SIGNATURE_HEADER: "v1=\u00e9" * 20}), "signature"),  # not ASCII
    (lambda b, h: (b, {**h, SIGNATURE_HEADER: "v1=" + "a" * 5000}), "signature"),
    (lambda b, h: (b, {k: v for k, v in h.items() if k != DELIVERY_HEADER}), "delivery id"),
    (lambda b, h: (b.replace(b'"d-1"', b"null"), {k: v for k, v in h.items() if k != DELIVERY_HEADER}), "signature"),
])
def test_a_webhook_changed_in_transit_is_refused(tamper, why):
    body, headers = webhook_request(finding(), SECRET, "d-1", now=1_795_950_000)
    body, headers = tamper(body, headers)
    with pytest.raises(WebhookRefused, match=why):
        verify_webhook(SECRET, headers, body, now=1_795_950_000)


def test_a_webhook_outside_the_replay_window_is_refused_either_side():
    body, headers = webhook_request(finding(), SECRET, "d-1", now=1_795_950_000)
    for now in (1_795_950_000 + 301, 1_795_950_000 - 301):
        with pytest.raises(WebhookRefused, match="replay window"):
            verify_webhook(SECRET, headers, body, now=now)
    with pytest.raises(WebhookRefused, match="signature"):
        verify_webhook(b"another-secret", headers, body, now=1_795_950_000)


def test_splunk_hec_event():
    doc = orjson.loads(splunk_hec_body(finding(), index="security"))
    assert doc["time"] == 1_795_950_000.123 and doc["sourcetype"] == "ocsf:detection_finding"
    assert doc["index"] == "security" and doc["event"]["finding_info"]["uid"] == finding()["finding_info"]["uid"]


RFC5424 = re.compile(rb'^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[aiaudit@32473(?: [a-z]+="(?:[^"\\\]]|\\["\\\]])*")+\]) \xef\xbb\xbf(.*)$', re.S)


def test_syslog_is_rfc5424_with_the_finding_in_structured_data_and_msg():
    f = finding()
    m = RFC5424.match(syslog_message(f, hostname="scorer-1"))
    assert m, syslog_message(f, hostname="scorer-1")[:300]
    assert int(m.group(1)) == 13 * 8 + 3 and m.group(2) == b"2026-11-29T11:00:00.123Z" and m.group(3) == b"scorer-1"
    assert b'origin="acme/prod/ai.requests/p1/g1" seq="42"' in m.group(7) and b'detectors="prompt_injection"' in m.group(7)
    assert orjson.loads(m.group(8)) == f
    assert octet_counted(b"abc") == b"3 abc"


def test_hostile_text_cannot_break_out_of_syslog_or_slack():
    hostile = 'eve"] [evil@1 x="y"]\n<14>1 forged <!channel> <https://evil.example|click>'
    f = finding(hostile, why="a reason with ] and \" and \\ and\r\nnew lines")
    msg = syslog_message(f, hostname="host with spaces\n")
    m = RFC5424.match(msg)
    assert m and m.group(3) == b"hostwithspaces" and b"\n" not in msg.split(b"\xef\xbb\xbf")[0]
    params = {k.decode(): re.sub(rb'\\(["\\\]])', rb"\1", v).decode()
              for k, v in re.findall(rb'([a-z]+)="((?:[^"\\\]]|\\["\\\]])*)"', m.group(7))}
    assert params["actor"] == hostile.replace("\n", "")  # one SD-ELEMENT: the injected one is text inside a value
    slack = orjson.loads(chat_message(f))["text"]
    assert "<!channel>" not in slack and "<https://" not in slack and "&lt;!channel&gt;" in slack


@pytest.mark.parametrize("why, actor", [("x" * 50_000, "alice@acme.example"),
                                        ("\U0001F600" * 5_000, "alice@acme.example"),  # 4 bytes a character
                                        ("\u00e9\"\\" * 8_000, "a" * 4096),          # escapes grow in JSON
                                        ("ok", "\U0001F600" * 4096)])
def test_a_syslog_message_is_bounded_in_bytes_whatever_its_fields(why, actor):
    """Within rsyslog's default maximum counted in bytes, cut at character boundaries and marked:
    a remainder read as a second, attacker-written message is impossible."""
    f = finding(actor=actor, why=why)
    msg = syslog_message(f, hostname="h")
    assert len(msg) <= MAX_SYSLOG_BYTES == 8096
    msg.decode("utf-8")  # never cut inside a character
    body = orjson.loads(msg.split(b"\xef\xbb\xbf", 1)[1])
    assert body.get("truncated") is True or body == f
    assert body["uid"] == f["finding_uid"] if "finding_uid" in f else True


def test_a_finding_with_a_long_actor_is_still_deliverable():
    from aiaudit.pipeline.deliver.formats import parse_finding

    f = finding(actor="a" * 4096)
    assert parse_finding(orjson.dumps(f)) == f
    assert len(syslog_message(f, hostname="h")) <= MAX_SYSLOG_BYTES



# --- what the agent takes from the alerts topic -----------------------------------------



def _with(path, value):
    f = finding()
    doc = f
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value
    return orjson.dumps(f)


@pytest.mark.parametrize("raw", [
    None, b"", b"{", b"[]", b"null", b'"finding"', orjson.dumps({"finding_info": {}}),
    b"{" + b" " * MAX_FINDING_BYTES + b"}",
    _with(("finding_info", "uid"), 7), _with(("finding_info", "uid"), ""), _with(("finding_info", "uid"), "u" * 129),
    _with(("actor", "user", "uid"), None), _with(("actor", "user", "uid"), "a" * 4097), _with(("time",), "1795950000"),
    _with(("time",), 1.5), _with(("time",), True), _with(("severity",), 3), _with(("unmapped", "chain"), "x"),
    _with(("unmapped", "chain", "seq"), "many"), _with(("unmapped", "chain", "origin"), ["o"]),
    _with(("unmapped", "detections"), ["not an object"]),
])
def test_an_alerts_message_that_is_not_a_deliverable_finding_is_refused(raw):
    with pytest.raises(Unreadable):
        parse_finding(raw)


def test_a_finding_from_the_scorer_is_taken_whole():
    f = finding()
    assert parse_finding(orjson.dumps(f)) == f
