"""Record format v1: the one module that decides the bytes that are hashed and signed.

    payload   = JCS({"v": 1, "origin", "seq", "prev", "ts", "kid", "src", "event"})
    sig       = Ed25519(b"aiaudit/record/v1\\n" + payload)
    leaf_hash = SHA-256(0x00 || payload || sig)   (an RFC 6962 Merkle leaf; the next `prev`)

A record is a pure function of its inputs (Ed25519 is deterministic), so a replay yields
the same bytes. A new format is a new version tag and a new module, never an edit here.
"""

from __future__ import annotations

import base64
import hashlib
from binascii import a2b_base64
from dataclasses import dataclass
from typing import Any, NewType, Protocol

import orjson

from aiaudit.pipeline.jcs import canonicalize
from aiaudit.pipeline.keys import KeyId

RECORD_VERSION = 1
SIG_DOMAIN_V1 = b"aiaudit/record/v1\n"  # the signature's domain tag: these signatures sign nothing else

Digest = NewType("Digest", str)  # lowercase hex SHA-256
ChainId = NewType("ChainId", str)  # the C2SP checkpoint "origin"

GENESIS_PREV = Digest("0" * 64)
PAYLOAD_KEYS = frozenset({"v", "origin", "seq", "prev", "ts", "kid", "src", "event"})


class Signer(Protocol):
    @property
    def kid(self) -> KeyId: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class Source:
    """Where the event was read: the input topic coordinates, for resume and reconciliation."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class ChainHead:
    """What the next record of a chain must continue from."""

    origin: ChainId
    next_seq: int
    prev: Digest
    last_src_offset: int  # -1 when the chain is empty

    @classmethod
    def genesis(cls, origin: ChainId) -> "ChainHead":
        return cls(origin=origin, next_seq=0, prev=GENESIS_PREV, last_src_offset=-1)


@dataclass(frozen=True, slots=True)  # slots: built once per record read (sink, scorer, verify), no __dict__
class Record:
    origin: ChainId
    seq: int
    payload: bytes
    sig: bytes
    leaf_hash: Digest

    def to_json(self) -> dict[str, Any]:
        """The export and chain-topic form: exact signed bytes in base64. Written by to_wire and
        read by from_wire only: an export line and a chain-topic message are the same bytes."""
        return {
            "origin": self.origin,
            "seq": self.seq,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "sig": base64.b64encode(self.sig).decode("ascii"),
            "leaf_hash": self.leaf_hash,
        }

    def to_wire(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_wire(cls, data: bytes) -> "Record":
        """Parse the export/chain-topic form. Raises ValueError on anything malformed."""
        try:
            obj = orjson.loads(data)
            origin, seq, leaf = obj["origin"], obj["seq"], obj["leaf_hash"]
            if type(origin) is not str or type(seq) is not int or seq < 0 or type(leaf) is not str:
                raise ValueError("origin, seq or leaf_hash has the wrong type")
            # binascii strict mode is base64.b64decode(validate=True) without its wrapper (the sink's and
            # the scorer's per-record cost): padding, alphabet and non-ASCII are refused the same way.
            return cls(origin=ChainId(origin), seq=seq, payload=a2b_base64(obj["payload"], strict_mode=True),
                       sig=a2b_base64(obj["sig"], strict_mode=True), leaf_hash=Digest(leaf))
        except (KeyError, TypeError) as exc:  # not an object, or a member missing
            raise ValueError(f"not a record line: {type(exc).__name__}: {exc}") from exc

    def next_head(self, src_offset: int) -> ChainHead:
        return ChainHead(self.origin, self.seq + 1, self.leaf_hash, src_offset)


def chain_origin(org: str, env: str, topic: str, partition: int, generation: int) -> ChainId:
    """`<org>/<env>/<topic>/p<partition>/g<generation>`: one single-writer log."""
    for part, value in (("org", org), ("env", env), ("topic", topic)):
        if not value or "/" in value or "+" in value or any(c.isspace() for c in value):
            # The origin names the chain's checkpoint key (C2SP signed-note: no spaces, no '+').
            raise ValueError(f"{part} {value!r} must be non-empty and hold no '/', '+' or space")
    return ChainId(f"{org}/{env}/{topic}/p{partition}/g{generation}")


def signing_input(payload: bytes) -> bytes:
    return SIG_DOMAIN_V1 + payload


def leaf_hash(payload: bytes, sig: bytes) -> Digest:
    return Digest(hashlib.sha256(b"\x00" + payload + sig).hexdigest())


def build_payload(head: ChainHead, kid: KeyId, ts: str, src: Source, event: dict[str, Any]) -> bytes:
    return canonicalize(
        {
            "v": RECORD_VERSION,
            "origin": head.origin,
            "seq": head.next_seq,
            "prev": head.prev,
            "ts": ts,
            "kid": kid,
            "src": {"topic": src.topic, "partition": src.partition, "offset": src.offset},
            "event": event,
        }
    )


def build_record(head: ChainHead, signer: Signer, ts: str, src: Source, event: dict[str, Any]) -> Record:
    """Append `event` to the chain at `head`: a pure function of its arguments."""
    payload = build_payload(head, signer.kid, ts, src, event)
    sig = signer.sign(signing_input(payload))
    return Record(head.origin, head.next_seq, payload, sig, leaf_hash(payload, sig))


def parse_payload(payload: bytes) -> dict[str, Any]:
    """Decode a stored payload. Raises ValueError when it is not a v1 payload object."""
    obj = orjson.loads(payload)  # orjson.JSONDecodeError is a ValueError
    if not isinstance(obj, dict) or set(obj) != PAYLOAD_KEYS:
        raise ValueError("payload is not a v1 record object")
    if obj["v"] != RECORD_VERSION:
        raise ValueError(f"unsupported record version {obj['v']!r}")
    return obj
