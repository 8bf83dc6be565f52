"""The event contract on the wire: framing, encoding, decoding and checks. Pure: no Kafka.

Two framings, told apart by the first byte:
- Avro single-object encoding (Avro spec): C3 01, the schema's 8-byte little-endian
  CRC-64-AVRO fingerprint, then the Avro binary datum. The default: needs no registry.
- Confluent schema-registry framing: 00, a 4-byte big-endian schema id, then the datum.
  Used when a registry URL is configured; the id is resolved through the registry.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import fastavro
from fastavro.validation import ValidationError, validate

from aiaudit.pipeline.contract.schema import (
    MAX_LIST_ITEMS,
    MAX_TEXT_CHARS,
    REQUIRED_TEXT,
    event_schema,
    fingerprint,
    known_fingerprints,
    parsed_schema,
)
from aiaudit.pipeline.contract.signature import SIGNATURE_FIELD
from aiaudit.pipeline.errors import InvalidEvent, MalformedEvent, OversizedEvent, UnknownSchema
from aiaudit.pipeline.jcs import MAX_SAFE_INTEGER

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"

SchemaResolver = Callable[[int], Any]  # registry schema id -> parsed writer schema


def format_ts(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. 2026-11-28T05:08:14.123456Z (the record's `ts`)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    if moment.utcoffset():
        moment = moment.astimezone(timezone.utc)
    # isoformat with fixed microseconds: the same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ") for
    # years 1000-9999, at a fifth of its cost (the verifier formats every stored row's ts).
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_ts(text: str) -> datetime:
    """The inverse of format_ts (any RFC 3339 time with an offset or Z)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _get(event: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = event
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _check_bounds(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_bounds(v, f"{where}.{k}" if where else k)
    elif isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            raise InvalidEvent(f"{where}: {len(value)} items, at most {MAX_LIST_ITEMS}")
        for v in value:
            _check_bounds(v, where)
    elif isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
        raise InvalidEvent(f"{where}: {len(value)} characters, at most {MAX_TEXT_CHARS}")
    elif isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_SAFE_INTEGER:
        raise InvalidEvent(f"{where}: {value} is outside 0..2^53-1")


def _within_bounds(event: dict[str, Any]) -> bool:
    """Fast pass of _check_bounds (no paths built); False sends the caller to the slow pass."""
    stack: list[Any] = [event]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            stack.extend(v.values())
        elif t is list:
            if len(v) > MAX_LIST_ITEMS:
                return False
            stack.extend(v)
        elif t is str:
            if len(v) > MAX_TEXT_CHARS:
                return False
        elif t is int and not 0 <= v <= MAX_SAFE_INTEGER:
            return False
    return True


def check_event(event: dict[str, Any]) -> None:
    """The contract beyond Avro types: required text present, sizes bounded, counts >= 0."""
    missing = [".".join(p) for p in REQUIRED_TEXT if not _get(event, p)]
    if missing:
        raise InvalidEvent(f"missing required field(s): {', '.join(missing)}")
    if not _within_bounds(event):
        _check_bounds(event, "")  # raises, naming the field


def _absent(record_schema: dict[str, Any], value: Any, where: str) -> list[str]:
    """Every field the schema requires (no default, null not allowed) that `value` lacks, by path."""
    if not isinstance(value, dict):
        return []
    out = []
    for f in record_schema["fields"]:
        path = f"{where}.{f['name']}" if where else f["name"]
        types = f["type"] if isinstance(f["type"], list) else [f["type"]]
        nullable = "null" in types
        if f["name"] not in value or value[f["name"]] is None:
            if not nullable and "default" not in f:
                out.append(path)
            continue
        for t in types:
            if isinstance(t, dict) and t.get("type") == "record":
                out.extend(_absent(t, value[f["name"]], path))
    return out


def validate_event(event: dict[str, Any]) -> None:
    """Raise InvalidEvent naming the problem before anything is sent: every missing required
    field at once, else the first type mismatch."""
    missing = _absent(event_schema(), event, "")
    if missing:
        raise InvalidEvent(f"missing required field(s): {', '.join(missing)}")
    try:
        validate(event, parsed_schema(), raise_errors=True)
    except ValidationError as exc:
        raise InvalidEvent(f"does not match the event schema: {exc}") from exc
    check_event(event)


def _encode_checked(event: dict[str, Any]) -> bytes:
    """Encode, validating only when the writer refuses: fastavro's validate costs ~180 us an
    event, the writer itself fails on any type mismatch, and validate then names the field."""
    try:
        datum = encode_datum(event)
    except Exception as exc:  # fastavro raises TypeError, ValueError, AttributeError ... on bad data
        validate_event(event)
        raise InvalidEvent(f"does not match the event schema: {type(exc).__name__}: {exc}") from exc
    check_event(event)
    return datum


def encode_datum(event: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(), event)
    return buf.getvalue()


def _avro_string(text: str) -> bytes:
    data = text.encode("utf-8")
    n, out = len(data) << 1, bytearray()  # zigzag of a non-negative length, then a varint
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + data


def encode_signed(event: dict[str, Any], sign: Callable[[dict[str, Any]], dict[str, str]], *, max_bytes: int,
                  schema_id: int | None = None) -> tuple[bytes, dict[str, str]]:
    """Validate, sign and frame one event (its emitter_signature left unset by the caller).

    `sign` gets the event's JSON form, exactly as the chain worker will decode it (every field,
    defaults filled in), and returns the signature member. The member is appended to the datum
    without encoding the event again: emitter_signature is the schema's last field, an Avro union
    whose null branch is the datum's last byte (0x00); branch 1 (0x02) and the record's two
    strings replace it. Raises InvalidEvent or OversizedEvent; sends nothing."""
    datum = _encode_checked({**event, SIGNATURE_FIELD: None})
    if datum[-1:] != b"\x00":  # cannot happen while emitter_signature is the last field (test_codec)
        raise InvalidEvent("the event schema's last field is not the emitter signature")
    as_json = to_json_event(_record(fastavro.schemaless_reader(io.BytesIO(datum), parsed_schema(), None)))
    member = sign(as_json)
    datum = datum[:-1] + b"\x02" + _avro_string(member["kid"]) + _avro_string(member["sig"])
    data = frame_single_object(datum) if schema_id is None else frame_confluent(schema_id, datum)
    if len(data) > max_bytes:
        raise OversizedEvent(f"encoded event is {len(data)} bytes, at most {max_bytes}")
    return data, member


@lru_cache(maxsize=1)
def _single_object_header() -> bytes:
    return SINGLE_OBJECT_MAGIC + fingerprint(parsed_schema())


def frame_single_object(datum: bytes) -> bytes:
    return _single_object_header() + datum


def frame_confluent(schema_id: int, datum: bytes) -> bytes:
    return CONFLUENT_MAGIC + struct.pack(">I", schema_id) + datum


def encode(event: dict[str, Any], *, max_bytes: int, schema_id: int | None = None) -> bytes:
    """Validate and frame one event. Raises InvalidEvent or OversizedEvent; sends nothing."""
    datum = _encode_checked(event)
    data = frame_single_object(datum) if schema_id is None else frame_confluent(schema_id, datum)
    if len(data) > max_bytes:
        raise OversizedEvent(f"encoded event is {len(data)} bytes, at most {max_bytes}")
    return data


def no_registry(schema_id: int) -> Any:
    raise UnknownSchema(f"registry schema id {schema_id}: no schema registry is configured")


def decode(data: bytes, *, max_bytes: int, resolve: SchemaResolver = no_registry) -> dict[str, Any]:
    """Decode one framed event into its JSON form (the `event` of a record).

    Raises OversizedEvent, MalformedEvent, UnknownSchema or InvalidEvent, each naming why.
    """
    if len(data) > max_bytes:
        raise OversizedEvent(f"message is {len(data)} bytes, at most {max_bytes}")
    if data[:2] == SINGLE_OBJECT_MAGIC:
        if len(data) < 10:
            raise MalformedEvent("single-object header is truncated")
        writer = known_fingerprints().get(data[2:10])
        if writer is None:
            raise UnknownSchema(f"schema fingerprint {data[2:10].hex()} is not a known event schema")
        body = data[10:]
    elif data[:1] == CONFLUENT_MAGIC:
        if len(data) < 5:
            raise MalformedEvent("schema-registry header is truncated")
        writer = resolve(struct.unpack(">I", data[1:5])[0])
        body = data[5:]
    else:
        raise MalformedEvent(f"not a framed Avro event (first bytes {data[:4].hex() or 'empty'})")
    buf = io.BytesIO(body)
    reader = parsed_schema()
    try:
        # Schema resolution only when the writer's schema is another one (it costs about half the decode).
        datum = fastavro.schemaless_reader(buf, writer, None if writer is reader else reader)
    except fastavro.read.SchemaResolutionError as exc:
        raise InvalidEvent(f"writer schema does not resolve to the event schema: {exc}") from exc
    except Exception as exc:  # fastavro raises EOFError, IndexError, UnicodeDecodeError ... on bad bytes
        raise MalformedEvent(f"Avro datum does not decode: {type(exc).__name__}: {exc}") from exc
    if buf.tell() != len(body):
        raise MalformedEvent(f"{len(body) - buf.tell()} trailing bytes after the Avro datum")
    event = to_json_event(_record(datum))
    check_event(event)
    return event


def _record(datum: object) -> dict[str, Any]:
    """The event schema is an Avro record: fastavro reads it as a dict, or the schema is not ours."""
    if not isinstance(datum, dict):
        raise MalformedEvent(f"Avro datum decodes to {type(datum).__name__}, not a record")
    return datum


def to_json_event(datum: dict[str, Any]) -> dict[str, Any]:
    """Avro datum -> the JSON object that is signed: times as RFC 3339, no floats."""
    out = dict(datum)
    occurred = out["occurred_at"]
    if isinstance(occurred, datetime):
        out["occurred_at"] = format_ts(occurred)
    return out


def from_json_event(event: dict[str, Any]) -> dict[str, Any]:
    """The inverse for emitters reading JSON: RFC 3339 `occurred_at` -> aware datetime."""
    out = dict(event)
    occurred = out.get("occurred_at")
    if isinstance(occurred, str):
        try:
            out["occurred_at"] = parse_ts(occurred)
        except ValueError as exc:
            raise InvalidEvent(f"occurred_at {occurred!r} is not an RFC 3339 time") from exc
    return out
