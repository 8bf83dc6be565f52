"""Request events in each destination's form (pipeline/deliver/request_events.py) and the
destinations file's `send: requests`."""

from __future__ import annotations

import orjson
import pytest

from aiaudit.pipeline.deliver.config import parse_targets
from aiaudit.pipeline.deliver.formats import MAX_SYSLOG_BYTES, verify_webhook
from aiaudit.pipeline.deliver.request_events import batch_label, batch_uid, hec_body, syslog_request, webhook_batch
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.query.ocsf import api_activity
from aiaudit.pipeline.store import evidence
from tests.unit.helpers import build_chain


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return [api_activity(dict(zip(evidence.COLUMNS, evidence.row(r))), product_version="0.1.0")
            for r in build_chain(4, Ed25519Signer.generate())]


def test_hec_stacks_one_event_object_per_request(events):
    body = hec_body(events, host="fwd")
    decoder_parts = body.replace(b"}{", b"}\n{").split(b"\n")
    parsed = [orjson.loads(p) for p in decoder_parts]
    assert [p["event"] for p in parsed] == events
    assert {p["sourcetype"] for p in parsed} == {"ocsf:api_activity"} and parsed[0]["host"] == "fwd"
    assert parsed[0]["time"] == events[0]["time"] / 1000


def test_a_webhook_batch_verifies_at_the_receiver_and_names_its_records(events):
    uid = batch_uid("siem", "o/p0/g1", 0, 3)
    body, headers = webhook_batch(events, b"k" * 32, uid, 1_800_000_000.0, origin="o/p0/g1", first_seq=0, last_seq=3)
    doc = verify_webhook(b"k" * 32, headers, body, now=1_800_000_001.0)
    assert doc["events"] == events and doc["requests"] == {"origin": "o/p0/g1", "first_seq": 0, "last_seq": 3,
                                                          "count": 4}
    assert uid != batch_uid("siem", "o/p0/g1", 0, 4) != batch_uid("other", "o/p0/g1", 0, 3)


def test_a_batch_label_fits_the_delivery_records_column():
    assert batch_label("o/p0/g1", 5, 9) == "requests:o/p0/g1#5-9"
    long = batch_label("x" * 500, 10**12, 10**12 + 5)
    assert len(long) <= 128 and long.endswith(f"#{10**12}-{10**12 + 5}")


def test_syslog_keeps_every_message_within_the_limit_and_hostile_text_in_its_value(events):
    hostile = {**events[0], "actor": {**events[0]["actor"], "user": {**events[0]["actor"]["user"],
                                                                   "uid": 'eve"] [x@1 a="b"]\n<!channel>'}}}
    msg = syslog_request(hostile, hostname="fwd")
    assert msg.count(b"[aiaudit@32473 ") == 1 and b'actor="eve\\"\\] [x@1 a=\\"b\\"\\]<!channel>"' in msg and b"\n" not in msg
    huge = {**events[1], "raw_data": "x" * 100_000, "message": "m" * 100_000}
    out = syslog_request(huge, hostname="fwd")
    assert len(out) <= MAX_SYSLOG_BYTES
    body = orjson.loads(out.split(b"\xef\xbb\xbf", 1)[1])
    assert body["truncated"] and body["unmapped"]["aiaudit"] == events[1]["unmapped"]["aiaudit"]


def test_the_destinations_file_takes_requests_for_siems_only():
    env = {"K": "k" * 32, "T": "11111111-2222"}
    (t,) = parse_targets({"destinations": [{"name": "siem", "kind": "splunk_hec", "send": "requests",
                                            "url": "https://splunk.example/services/collector/event",
                                            "secret_env": "T"}]}, env)
    assert t.destination.send == "requests"
    with pytest.raises(ValueError, match="not to chat"):
        parse_targets({"destinations": [{"name": "c", "kind": "chat", "send": "requests",
                                         "url": "https://hooks.example/x"}]}, env)
    with pytest.raises(ValueError, match="send"):
        parse_targets({"destinations": [{"name": "c", "kind": "webhook", "send": "everything",
                                         "url": "https://x.example/", "secret_env": "K"}]}, env)
