"""OTLP/HTTP requests in, plain values out (pure): an ExportTraceServiceRequest or
ExportLogsServiceRequest in binary protobuf or OTLP's JSON encoding, as Span and LogEvent values;
and the export responses and error statuses in the encoding the sender used.

OTLP's JSON differs from protobuf's own JSON mapping in one place: trace and span ids are hex,
not base64 (the OTLP specification, "JSON Protobuf Encoding"); they are turned into base64 before
the protobuf parser reads the document, so both encodings go through one parser. Unknown fields
are ignored, as the specification asks of receivers.

Bounds: the caller bounds the body (bytes, after decompression); attribute values nest at most
MAX_DEPTH deep here (deeper values are dropped), and every string is cut at MAX_STRING characters.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_DEPTH = 8
MAX_STRING = 1 << 20  # characters of one string value kept (message content is cut here)
STATUS_ERROR = 2  # Status.StatusCode STATUS_CODE_ERROR


class WireError(ValueError):
    """The body is not an OTLP export request in the encoding its Content-Type names."""


@dataclass(frozen=True)
class Span:
    trace_id: str  # 32 hex digits ("" when the sender sent none)
    span_id: str  # 16 hex digits
    name: str
    start_ns: int
    end_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str


@dataclass(frozen=True)
class LogEvent:
    trace_id: str
    span_id: str
    event_name: str  # the record's event_name, else its `event.name` attribute
    time_ns: int
    attributes: dict[str, Any]
    body: Any
    resource: dict[str, Any]


def value_of(v: AnyValue, depth: int = 0) -> Any:
    """An AnyValue as a Python value (bytes as base64 text); None past MAX_DEPTH."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value[:MAX_STRING]
    if kind in ("bool_value", "int_value", "double_value"):
        return getattr(v, kind)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value[:MAX_STRING]).decode()
    if depth >= MAX_DEPTH:
        return None
    if kind == "array_value":
        return [value_of(x, depth + 1) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(v.kvlist_value.values, depth + 1)
    return None


def attributes_of(pairs: Any, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in pairs:
        assert isinstance(kv, KeyValue)
        out[kv.key[:256]] = value_of(kv.value, depth)
    return out


def _hex(raw: bytes) -> str:
    return raw.hex()


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before `Content-Encoding` (gzip or deflate), at most `limit` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise WireError(f"Content-Encoding {encoding[:32]!r} is not one this receiver reads (gzip, deflate)")
    d = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = d.decompress(body, limit + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise WireError(f"the body is not valid {encoding}: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise TooLarge(f"the body is over {limit} bytes once decompressed")
    return out


class TooLarge(WireError):
    """The body, or what it decompresses to, is over the receiver's limit."""


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _ids_to_base64(node: Any, depth: int = 0) -> None:
    """OTLP JSON's hex ids as protobuf JSON's base64, in place (every object of the document)."""
    if depth > 64:
        raise WireError("the JSON document nests too deeply")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode() if value else ""
                except ValueError:
                    raise WireError(f"{key} {value[:40]!r} is not hex") from None
            elif isinstance(value, (dict, list)):
                _ids_to_base64(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            _ids_to_base64(item, depth + 1)


def _parse(body: bytes, content_type: str, message: Message) -> None:
    if content_type == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise WireError(f"the body is not a protobuf {type(message).__name__}: {str(exc)[:200]}") from None
        return
    if content_type == JSON:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise WireError(f"the body is not JSON: {str(exc)[:200]}") from None
        if not isinstance(doc, dict):
            raise WireError("the JSON body is not an object")
        _ids_to_base64(doc)
        try:
            json_format.ParseDict(doc, message, ignore_unknown_fields=True, max_recursion_depth=64)
        except (json_format.ParseError, RecursionError, ValueError, TypeError, binascii.Error) as exc:
            raise WireError(f"the JSON body is not a {type(message).__name__}: {str(exc)[:200]}") from None
        return
    raise WireError(f"Content-Type {content_type[:64]!r} is not OTLP's ({PROTOBUF} or {JSON})")


def spans_of(body: bytes, content_type: str) -> list[Span]:
    """Every span of an ExportTraceServiceRequest, with its resource's and scope's names."""
    request = ExportTraceServiceRequest()
    _parse(body, content_type, request)
    out: list[Span] = []
    for rs in request.resource_spans:
        resource = attributes_of(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(Span(_hex(s.trace_id), _hex(s.span_id), s.name[:256], s.start_time_unix_nano,
                                s.end_time_unix_nano, int(s.status.code), s.status.message[:1024],
                                attributes_of(s.attributes), resource, ss.scope.name[:256]))
    return out


def logs_of(body: bytes, content_type: str) -> list[LogEvent]:
    """Every log record of an ExportLogsServiceRequest."""
    request = ExportLogsServiceRequest()
    _parse(body, content_type, request)
    out: list[LogEvent] = []
    for rl in request.resource_logs:
        resource = attributes_of(rl.resource.attributes)
        for sl in rl.scope_logs:
            for r in sl.log_records:
                attributes = attributes_of(r.attributes)
                name = r.event_name or attributes.get("event.name") or ""
                out.append(LogEvent(_hex(r.trace_id), _hex(r.span_id), str(name)[:256],
                                    r.time_unix_nano or r.observed_time_unix_nano, attributes,
                                    value_of(r.body) if r.HasField("body") else None, resource))
    return out


def _encode(message: Message, content_type: str) -> bytes:
    if content_type == JSON:
        return orjson.dumps(json_format.MessageToDict(message))
    return bytes(message.SerializeToString())


def traces_response(rejected: int, message: str, content_type: str) -> bytes:
    """ExportTraceServiceResponse: partial success when some spans were rejected, else empty."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return _encode(response, content_type)


def logs_response(rejected: int, message: str, content_type: str) -> bytes:
    response = ExportLogsServiceResponse()
    if rejected or message:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = message
    return _encode(response, content_type)


def status(code: int, message: str, content_type: str) -> bytes:
    """A google.rpc.Status body (what OTLP/HTTP answers a failed request with)."""
    from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

    return _encode(Status(code=code, message=message), content_type)
