"""The event contract: what an edge emitter sends and the chain worker accepts.

    schema.py    the .avsc (the one source other languages read): fingerprint, enumerations, bounds
    codec.py     framing (Avro single-object or schema-registry), encode, decode, checks, RFC 3339 times
    signature.py emitter signatures: the signed bytes, the emitter key set and its checks
    registry.py  the schema-registry client (I/O edge), used only when a registry is configured

Pure except registry.py. Emitters, the chain worker and the gateway all import from here.
"""

from aiaudit.pipeline.contract.codec import (
                                     CONFLUENT_MAGIC,
                                     SINGLE_OBJECT_MAGIC,
                                     SchemaResolver,
                                     check_event,
                                     decode,
                                     encode,
                                     encode_datum,
                                     encode_signed,
                                     format_ts,
                                     frame_confluent,
                                     frame_single_object,
                                     from_json_event,
                                     parse_ts,
                                     to_json_event,
                                     validate_event,
)
from aiaudit.pipeline.contract.schema import (
                                     ACTOR_TYPES,
                                     DECISIONS,
                                     LEVEL_RANK,
                                     LEVELS,
                                     MAX_LIST_ITEMS,
                                     MAX_TEXT_CHARS,
                                     REQUIRED_TEXT,
                                     crc64_avro,
                                     enum_symbols,
                                     fingerprint,
                                     parsed_schema,
                                     schema_text,
)

__all__ = [
    "ACTOR_TYPES", "CONFLUENT_MAGIC", "DECISIONS", "LEVELS", "LEVEL_RANK", "MAX_LIST_ITEMS", "MAX_TEXT_CHARS",
    "REQUIRED_TEXT", "SINGLE_OBJECT_MAGIC", "SchemaResolver", "check_event", "crc64_avro", "decode", "encode",
    "encode_datum", "encode_signed", "enum_symbols", "fingerprint", "format_ts", "frame_confluent", "frame_single_object",
    "from_json_event", "parse_ts", "parsed_schema", "schema_text", "to_json_event", "validate_event",
]
