"""Delivery formats and routing (pure): each destination's form, signatures and replay window,
hostile text escaped for where it lands, filters, suppression, backoff, stable delivery ids."""

from __future__ import annotations

import re

import orjson
import pytest

from aiaudit.detectors.rules import RuleHit
from aiaudit.pipeline.deliver.formats import (
    DELIVERY_HEADER,
    MAX_SYSLOG_BYTES,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookRefused,
    chat_message,
    octet_counted,
    splunk_hec_body,
    syslog_message,
    verify_webhook,
    webhook_request,
)
from aiaudit.pipeline.deliver.policy import (
    Destination,
    accepts,
    delivery_uid,
    retry_after,
    suppressed,
    suppression_keys,
)
from aiaudit.pipeline.score.ocsf import detection_finding

SECRET = b"s3cret-shared-with-the-receiver"


def finding(actor="alice@acme.example", *, severity="high", rules=("prompt_injection",), route="chat", why="2 markers"):
    event = {"actor": {"id": actor, "type": "workforce"}, "decision": "allow", "event_id": "e1",
             "occurred_at": "2026-11-29T10:00:00.000000Z", "gen_ai_provider_name": "openai",
             "gen_ai_request_model": "gpt-4o", "route": route}
    return detection_finding(origin="acme/prod/ai.requests/p1/g1", seq=42, leaf_hash="ab" * 32, event=event,
                             score=0.41, severity=severity, explanation=[], model_version="m1",
                             detected_at_ms=1_795_950_000_123, rule_hits=[RuleHit(r, severity, why) for r in rules])


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


def test_filters_by_severity_detector_and_route():
    dest = Destination("soc", "webhook", min_severity="high", detectors=frozenset({"prompt_injection"}),
                       routes=frozenset({"chat"}))
    assert accepts(dest, finding())
    assert not accepts(dest, finding(severity="medium"))
    assert not accepts(dest, finding(rules=("request_burst",)))
    assert not accepts(dest, finding(route="support-bot"))
    assert accepts(Destination("all", "syslog"), finding(severity="medium", route=None))
    with pytest.raises(ValueError, match="min_severity"):
        Destination("x", "chat", min_severity="low")


def test_suppression_per_identity_and_detector():
    dest = Destination("chat", "chat", suppress_s=900)
    keys = suppression_keys(finding(rules=("prompt_injection", "request_burst")))
    assert keys == ["alice@acme.example\nprompt_injection", "alice@acme.example\nrequest_burst"]
    sent = {keys[0]: 1000.0}
    assert not suppressed(dest, sent, keys, 1100.0)  # request_burst not yet sent for alice
    sent[keys[1]] = 1050.0
    assert suppressed(dest, sent, keys, 1100.0) and not suppressed(dest, sent, keys, 1000.0 + 900)
    assert not suppressed(dest, sent, suppression_keys(finding("bob@acme.example")), 1100.0)


def test_delivery_ids_are_stable_and_backoff_grows_to_a_cap_then_stops():
    dest = Destination("siem", "splunk_hec", max_attempts=6, backoff_s=2, backoff_max_s=20)
    uid = delivery_uid(dest, "f-1")
    assert uid == delivery_uid(dest, "f-1") != delivery_uid(Destination("other", "splunk_hec"), "f-1")
    waits = [retry_after(dest, uid, a) for a in range(1, 7)]
    assert waits[-1] is None and all(w is not None for w in waits[:-1])
    assert 2 <= waits[0] <= 2.4 and 4 <= waits[1] <= 4.8 and 16 <= waits[3] <= 19.2 and 20 <= waits[4] <= 24


# --- the agent's decisions (pure): replays after a restart, in-doubt sends, retries ----------

from aiaudit.pipeline.deliver.policy import after_attempt, first_step, retry_step  # noqa: E402

DEST = Destination("soc", "webhook", suppress_s=600, max_attempts=3, backoff_s=1, backoff_max_s=4)


def test_a_new_finding_is_sent_and_a_replayed_one_is_not_sent_again():
    f = finding()
    assert first_step(DEST, f, None, {}, 1000.0).action == "send"
    for state in ("delivered", "suppressed", "dead_lettered", "retrying"):
        assert first_step(DEST, f, {"state": state, "attempt": 1}, {}, 1000.0).action == "skip", state
    assert first_step(DEST, finding(severity="medium"), None, {}, 1000.0).action == "send"
    assert first_step(Destination("x", "chat", min_severity="high"), finding(severity="medium"), None, {}, 1.0).action == "skip"


def test_only_a_first_attempt_with_no_outcome_is_resent_from_the_alerts_side_and_marked_in_doubt():
    step = first_step(DEST, finding(), {"state": "sending", "attempt": 1}, {}, 1000.0)
    assert (step.action, step.attempt, step.in_doubt) == ("send", 1, True)
    # a retry in flight at the kill is the retries topic's to replay, not the alerts topic's
    assert first_step(DEST, finding(), {"state": "sending", "attempt": 2}, {}, 1000.0).action == "skip"


def test_suppression_by_the_findings_own_times():
    f = finding()
    sent = {k: 1000.0 for k in suppression_keys(f)}
    assert first_step(DEST, f, None, sent, 1599.0).action == "suppress"
    assert first_step(DEST, f, None, sent, 1600.0).action == "send"
    assert first_step(DEST, finding(rules=("prompt_injection", "denial_burst")), None, sent, 1100.0).action == "send"


def test_a_retry_is_acted_on_once_whatever_is_replayed():
    assert retry_step({"state": "retrying", "attempt": 1}, 2).action == "send"
    doubt = retry_step({"state": "sending", "attempt": 2}, 2)
    assert (doubt.action, doubt.in_doubt) == ("send", True)
    for prior, n in (({"state": "retrying", "attempt": 2}, 2), ({"state": "sending", "attempt": 3}, 2),
                     ({"state": "delivered", "attempt": 2}, 3), (None, 2), ({"state": "retrying", "attempt": 1}, 3)):
        assert retry_step(prior, n).action == "skip", (prior, n)


def test_after_an_attempt_retry_with_backoff_until_the_last_then_dead_letter():
    assert after_attempt(DEST, "u", "delivered", 1) == ("delivered", None)
    state, delay = after_attempt(DEST, "u", "failed", 1)
    assert state == "retrying" and 1 <= delay <= 1.2
    assert after_attempt(DEST, "u", "failed", 2)[0] == "retrying"
    assert after_attempt(DEST, "u", "failed", 3) == ("dead_lettered", None)


# --- the destinations file ------------------------------------------------------------

from aiaudit.pipeline.deliver.config import load_targets, parse_targets  # noqa: E402
from aiaudit.pipeline.errors import ConfigError  # noqa: E402

ENV = {"HOOK_KEY": "k" * 32, "HEC_TOKEN": "0b1a-22cd", "CHAT_URL": "https://hooks.slack.example/T/B/x"}


def test_a_destinations_file_with_every_kind():
    doc = {"destinations": [
        {"name": "soc", "kind": "webhook", "url": "https://soc.example/hook", "secret_env": "HOOK_KEY",
         "min_severity": "high", "detectors": ["prompt_injection"], "routes": ["chat"], "suppress_s": 60,
         "max_attempts": 4, "backoff_s": 0.5, "backoff_max_s": 10},
        {"name": "splunk", "kind": "splunk_hec", "url": "https://splunk.example:8088/services/collector/event",
         "secret_env": "HEC_TOKEN"},
        {"name": "siem", "kind": "syslog", "host": "siem.example", "tls": True, "ca_file": "/etc/ca.pem"},
        {"name": "chat", "kind": "chat", "url_env": "CHAT_URL"},
        {"name": "local", "kind": "webhook", "url": "http://127.0.0.1:8080/h", "secret_env": "HOOK_KEY"}]}
    soc, splunk, siem, chat, local = parse_targets(doc, ENV)
    assert soc.secret == b"k" * 32 and soc.destination.detectors == {"prompt_injection"}
    assert soc.destination.max_attempts == 4 and soc.destination.min_severity == "high"
    assert splunk.secret == b"0b1a-22cd" and splunk.destination.min_severity == "medium"
    assert (siem.host, siem.port, siem.tls, str(siem.ca_file)) == ("siem.example", 6514, True, "/etc/ca.pem")
    assert chat.url == ENV["CHAT_URL"] and "x" not in repr(chat).split("hooks")[0]
    assert "k" * 32 not in repr(soc) and local.url.startswith("http://127.0.0.1")


@pytest.mark.parametrize("entry, why", [
    ({"name": "a", "kind": "email", "url": "https://x"}, "kind must be"),
    ({"name": "a", "kind": "webhook", "url": "https://x", "secret_env": "HOOK_KEY", "extra": 1}, "unknown key"),
    ({"name": "A b", "kind": "chat", "url": "https://x"}, "name:"),
    ({"name": "a", "kind": "webhook", "url": "https://x"}, "secret_env"),
    ({"name": "a", "kind": "webhook", "url": "https://x", "secret_env": "UNSET"}, "UNSET"),
    ({"name": "a", "kind": "webhook", "url": "https://x", "secret_env": "HEC_TOKEN"}, "shorter than 16"),
    ({"name": "a", "kind": "splunk_hec", "url": "https://x", "secret_env": "HOOK_KEY2"}, "HOOK_KEY2"),
    ({"name": "a", "kind": "chat", "url": "http://soc.example/h"}, "plain http only to a loopback"),
    ({"name": "a", "kind": "chat", "url": "https://u:p@soc.example/h"}, "no credentials"),
    ({"name": "a", "kind": "chat", "url": "file:///etc/passwd"}, "https:// URL"),
    ({"name": "a", "kind": "chat", "url": "https://x", "url_env": "CHAT_URL"}, "one of `url` or `url_env`"),
    ({"name": "a", "kind": "chat", "url": "https://x", "min_severity": "low"}, "min_severity"),
    ({"name": "a", "kind": "chat", "url": "https://x", "max_attempts": 0}, "max_attempts"),
    ({"name": "a", "kind": "chat", "url": "https://x", "max_attempts": True}, "max_attempts"),
    ({"name": "a", "kind": "chat", "url": "https://x", "suppress_s": "900"}, "suppress_s"),
    ({"name": "a", "kind": "chat", "url": "https://x", "detectors": "prompt_injection"}, "detectors"),
    ({"name": "a", "kind": "chat", "url": "https://x", "backoff_s": 10, "backoff_max_s": 5}, "backoff"),
    ({"name": "a", "kind": "syslog"}, "needs `host`"),
    ({"name": "a", "kind": "syslog", "host": "h", "ca_file": "/ca"}, "only with tls"),
    ({"name": "a", "kind": "syslog", "host": "h", "port": 70000}, "port"),
    ({"name": "a", "kind": "syslog", "host": "h x"}, "host"),
    ("soc", "not a mapping"),
])
def test_a_bad_destination_is_refused_saying_why(entry, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_targets({"destinations": [entry]}, {**ENV, "HOOK_KEY2": "not a token!"})


def test_a_bad_file_is_refused_naming_it(tmp_path):
    good = {"name": "a", "kind": "chat", "url": "https://x.example"}
    cases = {"missing": None, "big": b"#" * 70_000, "yaml": b"destinations: [", "list": b"- a\n",
             "empty": orjson.dumps({"destinations": []}), "dup": orjson.dumps({"destinations": [good, good]}),
             "extra": orjson.dumps({"destinations": [good], "more": 1}),
             "many": orjson.dumps({"destinations": [{**good, "name": f"a{i}"} for i in range(33)]})}
    for name, content in cases.items():
        path = tmp_path / f"{name}.yaml"
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ConfigError, match=re.escape(str(path))):
            load_targets(path, ENV)
    ok = tmp_path / "ok.yaml"
    ok.write_bytes(orjson.dumps({"destinations": [good]}))
    assert [t.destination.name for t in load_targets(ok, ENV)] == ["a"]


# --- what the agent takes from the alerts topic -----------------------------------------

from aiaudit.pipeline.deliver.formats import MAX_FINDING_BYTES, Unreadable, parse_finding  # noqa: E402


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


def test_the_example_destinations_file_parses_with_its_secrets_from_the_environment():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "delivery" / "destinations.yaml"
    env = {"SOC_WEBHOOK_KEY": "k" * 32, "SPLUNK_HEC_TOKEN": "abc-123", "SOC_SLACK_WEBHOOK_URL": "https://hooks.example/x"}
    assert [t.destination.kind for t in load_targets(path, env)] == ["webhook", "splunk_hec", "syslog", "chat"]
    with pytest.raises(ConfigError, match="SOC_WEBHOOK_KEY"):
        load_targets(path, {k: v for k, v in env.items() if k != "SOC_WEBHOOK_KEY"})
