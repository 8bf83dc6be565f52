from datetime import datetime, timezone

import fastavro
import pytest

from aiaudit.pipeline import contract
from aiaudit.pipeline.emit.synthetic import SyntheticEvents, malformed_messages
from aiaudit.pipeline.errors import EventRejected, InvalidEvent, MalformedEvent, OversizedEvent, UnknownSchema

MAX = 256 * 1024


def event(**over):
    ev = SyntheticEvents(3, datetime(2026, 11, 28, 9, tzinfo=timezone.utc), "unit").next_event()
    ev.update(over)
    return ev


def test_fingerprint_is_the_avro_spec_crc64():
    canonical = fastavro.schema.to_parsing_canonical_form(contract.parsed_schema())
    # fastavro gives the fingerprint's bytes as hex, in the little-endian order of the header.
    assert contract.fingerprint(contract.parsed_schema()).hex() == fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")
    # Avro spec: the fingerprint of the empty byte string is the initial value.
    assert contract.crc64_avro(b"") == 0xC15D213AA4D7A795


def test_round_trip_single_object_encoding():
    ev = event()
    data = contract.encode(ev, max_bytes=MAX)
    assert data[:2] == b"\xc3\x01"
    out = contract.decode(data, max_bytes=MAX)
    assert out["occurred_at"] == "2026-11-28T09:00:" + out["occurred_at"][17:]
    assert out["event_id"] == ev["event_id"] and out["actor"] == ev["actor"] and out["content_features"] == ev["content_features"]


def test_confluent_framing_resolves_through_the_registry():
    data = contract.encode(event(), max_bytes=MAX, schema_id=7)
    assert data[:5] == b"\x00\x00\x00\x00\x07"
    seen = []
    out = contract.decode(data, max_bytes=MAX, resolve=lambda i: seen.append(i) or contract.parsed_schema())
    assert seen == [7] and out["policy_id"] == "acme-default"


def test_confluent_framing_without_registry_is_unknown_schema():
    with pytest.raises(UnknownSchema, match="no schema registry"):
        contract.decode(contract.encode(event(), max_bytes=MAX, schema_id=7), max_bytes=MAX)


@pytest.mark.parametrize("reason,data", malformed_messages(5, MAX), ids=lambda v: v if isinstance(v, str) else "")
def test_each_kind_of_bad_input_gets_its_reason(reason, data):
    with pytest.raises(EventRejected) as info:
        contract.decode(data, max_bytes=MAX)
    assert getattr(info.value, "reason", None) == reason


def test_trailing_bytes_are_malformed():
    with pytest.raises(MalformedEvent, match="trailing"):
        contract.decode(contract.encode(event(), max_bytes=MAX) + b"\x00", max_bytes=MAX)


def test_missing_required_fields_are_named():
    bad = event(policy_version="", actor={"type": "agent", "id": "", "on_behalf_of": None, "untrusted_label": None})
    with pytest.raises(InvalidEvent, match="actor.id, policy_version"):
        contract.validate_event(bad)
    with pytest.raises(InvalidEvent, match=r"missing required field\(s\): decision$"):
        contract.validate_event({k: v for k, v in event().items() if k != "decision"})
    with pytest.raises(InvalidEvent, match="does not match the event schema"):
        contract.validate_event({**event(), "decision": "maybe"})


def test_bounds_on_strings_lists_and_numbers():
    with pytest.raises(InvalidEvent, match="route"):
        contract.validate_event(event(route="x" * 5000))
    with pytest.raises(InvalidEvent, match="decision_reasons"):
        contract.validate_event(event(decision_reasons=["r"] * 300))
    with pytest.raises(InvalidEvent, match="latency_us"):
        contract.validate_event(event(latency_us=-1))


def test_oversized_is_refused_before_sending():
    with pytest.raises(OversizedEvent):
        contract.encode(event(decision_reasons=["x" * 4000] * 200), max_bytes=64 * 1024)


def test_from_json_event_parses_rfc3339():
    ev = contract.from_json_event({"occurred_at": "2026-11-28T05:08:14.123456Z"})
    assert ev["occurred_at"] == datetime(2026, 11, 28, 5, 8, 14, 123456, tzinfo=timezone.utc)
    with pytest.raises(InvalidEvent):
        contract.from_json_event({"occurred_at": "yesterday"})


def test_format_ts_is_the_strftime_form_for_any_moment_and_offset():
    import random
    from datetime import datetime, timedelta, timezone

    from aiaudit.pipeline.contract import format_ts, parse_ts

    rng = random.Random(3339)
    for _ in range(2000):
        moment = datetime(rng.randint(1000, 9998), 1, 1, tzinfo=timezone.utc) + timedelta(
            days=rng.randint(0, 364), seconds=rng.randint(0, 86399), microseconds=rng.choice([0, 1, rng.randint(0, 999999)]))
        local = moment.astimezone(timezone(timedelta(minutes=rng.randint(-900, 900))))
        want = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert format_ts(moment) == format_ts(local) == want
        assert parse_ts(want) == moment


def test_every_missing_required_field_is_named_at_once_without_the_schema():
    from datetime import datetime, timezone

    from aiaudit.pipeline.contract import validate_event
    from aiaudit.pipeline.errors import InvalidEvent

    with pytest.raises(InvalidEvent) as info:
        validate_event({"event_id": "x", "emitter_id": "e", "emitter_seq": 0, "occurred_at": datetime.now(timezone.utc),
                        "actor": {"type": "agent"}, "route": "r"})
    message = str(info.value)
    assert message.startswith("missing required field(s): actor.id, authz, gen_ai_provider_name")
    assert "policy_version" in message and "route" not in message and '"fields"' not in message  # no schema dump
