"""OTLP/HTTP bodies in both encodings, and hostile ones (pipeline/otlp/wire.py)."""

from __future__ import annotations

import gzip
import zlib

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from aiaudit.pipeline.otlp import wire


def _request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "shop"
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai_v2"
    s = ss.spans.add()
    s.trace_id, s.span_id, s.name = bytes(range(16)), bytes(range(8)), "chat gpt-4o"
    s.start_time_unix_nano, s.end_time_unix_nano = 10, 20
    s.status.code, s.status.message = 2, "boom"
    for key, setter in (("gen_ai.usage.input_tokens", lambda v: setattr(v, "int_value", 7)),
                        ("flag", lambda v: setattr(v, "bool_value", True)),
                        ("ratio", lambda v: setattr(v, "double_value", 0.5))):
        a = s.attributes.add()
        a.key = key
        setter(a.value)
    arr = s.attributes.add()
    arr.key = "user.roles"
    arr.value.array_value.values.add().string_value = "support"
    return req


def test_protobuf_and_otlp_json_give_the_same_spans():
    req = _request()
    from_proto = wire.spans_of(req.SerializeToString(), wire.PROTOBUF)
    doc = orjson.loads(orjson.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2"}, "spans": [{
            "traceId": bytes(range(16)).hex(), "spanId": bytes(range(8)).hex(), "name": "chat gpt-4o",
            "startTimeUnixNano": "10", "endTimeUnixNano": 20, "status": {"code": 2, "message": "boom"},
            "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "7"}},
                           {"key": "flag", "value": {"boolValue": True}},
                           {"key": "ratio", "value": {"doubleValue": 0.5}},
                           {"key": "user.roles", "value": {"arrayValue": {"values": [{"stringValue": "support"}]}}}],
            "someFieldFromTheFuture": {"x": 1}}]}]}]}))
    from_json = wire.spans_of(orjson.dumps(doc), wire.JSON)
    assert from_proto == from_json
    (span,) = from_proto
    assert span.trace_id == bytes(range(16)).hex() and span.span_id == bytes(range(8)).hex()
    assert span.attributes == {"gen_ai.usage.input_tokens": 7, "flag": True, "ratio": 0.5, "user.roles": ["support"]}
    assert span.resource == {"service.name": "shop"} and span.status_code == 2 and span.status_message == "boom"


def test_log_records_carry_their_event_name_and_structured_attributes():
    req = ExportLogsServiceRequest()
    r = req.resource_logs.add().scope_logs.add().log_records.add()
    r.trace_id, r.span_id, r.event_name = b"\1" * 16, b"\2" * 8, "gen_ai.client.inference.operation.details"
    a = r.attributes.add()
    a.key = "gen_ai.input.messages"
    msg = a.value.array_value.values.add().kvlist_value.values.add()
    msg.key, msg.value.string_value = "role", "user"
    r.body.string_value = "hi"
    (event,) = wire.logs_of(req.SerializeToString(), wire.PROTOBUF)
    assert event.event_name == "gen_ai.client.inference.operation.details" and event.body == "hi"
    assert event.attributes == {"gen_ai.input.messages": [{"role": "user"}]}
    # An event named by the older `event.name` attribute
    req2 = ExportLogsServiceRequest()
    r2 = req2.resource_logs.add().scope_logs.add().log_records.add()
    a2 = r2.attributes.add()
    a2.key, a2.value.string_value = "event.name", "gen_ai.user.message"
    assert wire.logs_of(req2.SerializeToString(), wire.PROTOBUF)[0].event_name == "gen_ai.user.message"


def _nested(levels: int) -> bytes:
    req = ExportTraceServiceRequest()
    s = req.resource_spans.add().scope_spans.add().spans.add()
    a = s.attributes.add()
    a.key = "deep"
    v = a.value
    for _ in range(levels):
        v = v.array_value.values.add()
    v.string_value = "bottom"
    return req.SerializeToString()


def test_values_nested_past_the_limit_are_dropped_not_recursed_into():
    with pytest.raises(wire.WireError, match="MaxDepth"):  # protobuf's own limit first (100 messages deep)
        wire.spans_of(_nested(60), wire.PROTOBUF)
    (span,) = wire.spans_of(_nested(30), wire.PROTOBUF)
    depth, node = 0, span.attributes["deep"]
    while isinstance(node, list) and node:
        node, depth = node[0], depth + 1
    assert depth == wire.MAX_DEPTH and node is None


@pytest.mark.parametrize("body, content_type, says", [
    (b"\xff\xff\xff", wire.PROTOBUF, "not a protobuf"),
    (b"{", wire.JSON, "not JSON"),
    (b"[1]", wire.JSON, "not an object"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "xyz"}]}]}]}', wire.JSON, "not hex"),
    (b'{"resourceSpans": "nope"}', wire.JSON, "not a ExportTraceServiceRequest"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}', wire.JSON, "not a"),
    (b"{}", "text/plain", "is not OTLP's"),
])
def test_a_body_that_is_not_an_export_request_is_refused_with_a_reason(body, content_type, says):
    with pytest.raises(wire.WireError, match=says):
        wire.spans_of(body, content_type)


def test_a_json_document_nested_without_end_is_refused():
    doc = b'{"resourceSpans": ' + b"[" * 200 + b"]" * 200 + b"}"
    with pytest.raises(wire.WireError):
        wire.spans_of(doc, wire.JSON)


def test_decompression_is_bounded_and_names_what_it_cannot_read():
    data = b"x" * 10_000
    assert wire.decompress(gzip.compress(data), "gzip", 10_000) == data
    assert wire.decompress(zlib.compress(data), "deflate", 10_000) == data
    assert wire.decompress(data, None, 10) == data  # identity: the caller bounds the raw body
    with pytest.raises(wire.TooLarge):
        wire.decompress(gzip.compress(data), "gzip", 9_999)
    with pytest.raises(wire.WireError, match="not valid gzip"):
        wire.decompress(b"plain", "gzip", 100)
    with pytest.raises(wire.WireError, match="br"):
        wire.decompress(data, "br", 100)


def test_responses_in_the_senders_encoding():
    proto = ExportTraceServiceResponse.FromString(wire.traces_response(2, "two spans", wire.PROTOBUF))
    assert proto.partial_success.rejected_spans == 2 and proto.partial_success.error_message == "two spans"
    assert orjson.loads(wire.traces_response(0, "", wire.JSON)) == {}
    assert orjson.loads(wire.logs_response(1, "one", wire.JSON)) == {
        "partialSuccess": {"rejectedLogRecords": "1", "errorMessage": "one"}}
    assert orjson.loads(wire.status(16, "no token", wire.JSON)) == {"code": 16, "message": "no token"}
