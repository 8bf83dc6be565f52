"""The event schema (schemas/ai_request.avsc, loaded by the `schemas` package), its fingerprint,
its closed sets and its bounds. Pure.

The .avsc is the one source of the contract other languages read. Everything here is read
from it, never written out again: the classification levels, decisions and actor types are
the schema's enum symbols.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any

import fastavro

from aiaudit.schemas import earlier_event_schemas, event_schema_text

# Re-exported: the contract's one reader of the schema and its enums.
from aiaudit.schemas import enum_symbols as enum_symbols
from aiaudit.schemas import event_schema as event_schema

# Fields that must be present and non-empty for a record to be evidence.
REQUIRED_TEXT = (
    ("event_id",), ("emitter_id",), ("actor", "id"), ("authz", "role"), ("route",),
    ("gen_ai_provider_name",), ("gen_ai_request_model",), ("policy_id",), ("policy_version",),
    ("retention_scope",),
)
MAX_TEXT_CHARS = 4096  # bound on any one string field
MAX_LIST_ITEMS = 256  # bound on any one array field


def schema_text() -> str:
    return event_schema_text()


@lru_cache(maxsize=1)
def parsed_schema() -> Any:
    return fastavro.parse_schema(event_schema())


# The closed sets of the contract, in the schema's order (levels rise from public to restricted).
LEVELS: tuple[str, ...] = enum_symbols("Level")
LEVEL_RANK: dict[str, int] = {name: rank for rank, name in enumerate(LEVELS)}
DECISIONS: tuple[str, ...] = enum_symbols("Decision")
ACTOR_TYPES: tuple[str, ...] = enum_symbols("ActorType")

_CRC64_EMPTY = 0xC15D213AA4D7A795


@lru_cache(maxsize=1)
def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


def crc64_avro(data: bytes) -> int:
    """The Avro spec's 64-bit Rabin fingerprint (CRC-64-AVRO)."""
    table = _crc64_table()
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def fingerprint(schema: Any) -> bytes:
    """8-byte little-endian CRC-64-AVRO of the schema's Parsing Canonical Form."""
    canonical = fastavro.schema.to_parsing_canonical_form(schema)
    return struct.pack("<Q", crc64_avro(canonical.encode("utf-8")))


@lru_cache(maxsize=1)
def known_fingerprints() -> dict[bytes, Any]:
    """Writer schemas by fingerprint: the current one and every earlier version (still decoded)."""
    known = {fingerprint(s): s for s in (fastavro.parse_schema(e) for e in earlier_event_schemas())}
    schema = parsed_schema()
    return {**known, fingerprint(schema): schema}
