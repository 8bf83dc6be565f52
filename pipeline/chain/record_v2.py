"""Record format v2: every kind of evidence other than AI requests (record.py, v1, unchanged).

    payload   = JCS({"v": 2, "kind", "origin", "seq", "prev", "ts", "kid", "src", "event"})
    sig       = Ed25519(b"aiaudit/record/v2/" + kind + b"\\n" + payload)
    leaf_hash = SHA-256(0x00 || payload || sig)   (as v1: an RFC 6962 Merkle leaf; the next `prev`)

`kind` names what the record is evidence of (chain/kinds.py lists them) and is part of the
signature's domain tag, so a signature over one kind's record is valid for no other kind and
for no v1 record. `event` is the message as its producer wrote it to Kafka, byte-exact:

    {"value": base64, "key": base64 | null, "headers": [[name, base64], ...]}

so that no re-rendering can differ from what was written (findings carry floats, which have no
portable canonical form), and the table a kind is projected into can be rebuilt from the record
(the verifier does). `ts` is the message's Kafka timestamp (RFC 3339 UTC, microseconds): part of
the input, so a replay yields the same bytes. A new format is a new module, never an edit here.
"""

from __future__ import annotations

import base64
import re
from binascii import a2b_base64
from dataclasses import dataclass
from typing import Any

import orjson

from aiaudit.pipeline.chain.record import ChainHead, Record, Signer, Source, leaf_hash
from aiaudit.pipeline.jcs import canonicalize
from aiaudit.pipeline.keys import KeyId

RECORD_VERSION = 2
SIG_DOMAIN_PREFIX = b"aiaudit/record/v2/"
PAYLOAD_KEYS = frozenset({"v", "kind", "origin", "seq", "prev", "ts", "kid", "src", "event"})
EVENT_KEYS = frozenset({"value", "key", "headers"})
KIND_NAME = re.compile(r"[a-z][a-z_]{0,31}")
MAX_HEADERS = 64


@dataclass(frozen=True)
class Message:
    """A Kafka message as written: the v2 record's event, decoded."""

    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    def to_event(self) -> dict[str, Any]:
        return {
            "value": base64.b64encode(self.value).decode("ascii"),
            "key": None if self.key is None else base64.b64encode(self.key).decode("ascii"),
            "headers": [[name, base64.b64encode(v).decode("ascii")] for name, v in self.headers],
        }

    @classmethod
    def from_event(cls, event: Any) -> "Message":
        """The message a v2 record's event holds. Raises ValueError on any other shape."""
        if type(event) is not dict or set(event) != EVENT_KEYS:
            raise ValueError("event is not {value, key, headers}")
        value, key, headers = event["value"], event["key"], event["headers"]
        if type(value) is not str or (key is not None and type(key) is not str) or type(headers) is not list \
                or len(headers) > MAX_HEADERS:
            raise ValueError("event value/key is not base64 text, or headers not a list of at most "
                             f"{MAX_HEADERS}")
        pairs = []
        for h in headers:
            if type(h) is not list or len(h) != 2 or type(h[0]) is not str or type(h[1]) is not str:
                raise ValueError("a header is not [name, base64]")
            pairs.append((h[0], _b64(h[1])))
        return cls(_b64(value), None if key is None else _b64(key), tuple(pairs))


def _b64(text: str) -> bytes:
    try:
        return a2b_base64(text, strict_mode=True)
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise ValueError(f"not strict base64: {exc}") from None


def check_kind(kind: str) -> str:
    if not KIND_NAME.fullmatch(kind):
        raise ValueError(f"kind {kind[:40]!r} is not 1-32 of a-z and _ (starting with a letter)")
    return kind


def sig_domain(kind: str) -> bytes:
    return SIG_DOMAIN_PREFIX + check_kind(kind).encode("ascii") + b"\n"


def signing_input(kind: str, payload: bytes) -> bytes:
    return sig_domain(kind) + payload


def build_payload(head: ChainHead, kind: str, kid: KeyId, ts: str, src: Source, message: Message) -> bytes:
    return canonicalize({
        "v": RECORD_VERSION,
        "kind": check_kind(kind),
        "origin": head.origin,
        "seq": head.next_seq,
        "prev": head.prev,
        "ts": ts,
        "kid": kid,
        "src": {"topic": src.topic, "partition": src.partition, "offset": src.offset},
        "event": message.to_event(),
    })


def build_record(head: ChainHead, signer: Signer, kind: str, ts: str, src: Source, message: Message) -> Record:
    """Append `message` (evidence of `kind`) to the chain at `head`: a pure function of its arguments."""
    payload = build_payload(head, kind, signer.kid, ts, src, message)
    sig = signer.sign(signing_input(kind, payload))
    return Record(head.origin, head.next_seq, payload, sig, leaf_hash(payload, sig))


def parse_payload(payload: bytes) -> dict[str, Any]:
    """Decode a stored v2 payload. Raises ValueError when it is not one (kind checked, event not)."""
    return check_parsed(orjson.loads(payload))


def check_parsed(obj: Any) -> dict[str, Any]:
    """`obj` (a parsed payload) when it has the v2 shape; raises ValueError otherwise."""
    if not isinstance(obj, dict) or set(obj) != PAYLOAD_KEYS:
        raise ValueError("payload is not a v2 record object")
    if obj["v"] != RECORD_VERSION:
        raise ValueError(f"unsupported record version {obj['v']!r}")
    if type(obj["kind"]) is not str:
        raise ValueError("kind is not a string")
    check_kind(obj["kind"])
    return obj
