"""Small builders for unit tests: a real signer, and chains built with the real record code."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiaudit.pipeline.chain.formats import parse_stored
from aiaudit.pipeline.chain.record import ChainHead, ChainId, Record, Source, build_record
from aiaudit.pipeline.contract import to_json_event
from aiaudit.pipeline.emit.synthetic import SyntheticEvents
from aiaudit.pipeline.keys import Ed25519Signer, KeyRing
from aiaudit.pipeline.store.kind_evidence import columns_of_stored
from aiaudit.pipeline.verify.rules import StoredRecord

ORIGIN = ChainId("acme/test/ai.requests/p0/g1")
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)


def events(n: int, *, seed: int = 1, emitter_id: str = "test-emitter") -> list[dict[str, Any]]:
    gen = SyntheticEvents(seed, T0, emitter_id)
    out = []
    for i in range(n):
        ev = gen.next_event()
        ev["emitter_seq"] = i
        out.append(to_json_event(ev))
    return out


def build_chain(n: int, signer: Ed25519Signer, *, origin: ChainId = ORIGIN, signers: list[Ed25519Signer] | None = None) -> list[Record]:
    """n records; with `signers`, record i is signed by signers[i * len // n] (a rotation)."""
    head = ChainHead.genesis(origin)
    records = []
    for i, ev in enumerate(events(n)):
        s = signers[i * len(signers) // n] if signers else signer
        rec = build_record(head, s, ev["occurred_at"], Source("ai.requests", 0, 100 + i), ev)
        records.append(rec)
        head = rec.next_head(100 + i)
    return records


def stored(records: list[Record], *, with_columns: bool = True) -> list[StoredRecord]:
    out = []
    for r in records:
        cols = columns_of_stored(parse_stored(r.payload)) if with_columns else None
        out.append(StoredRecord(r.origin, r.seq, r.payload, r.sig, r.leaf_hash, cols))
    return out


def keyring_of(*signers: Ed25519Signer) -> KeyRing:
    return KeyRing.from_jwks({"keys": [s.jwk() for s in signers]})


KIND_ORIGIN = ChainId("acme/test/ai.audit.alerts/p0/g1")


def build_kind_chain(messages: list[bytes], signer: Ed25519Signer, *, kind: str = "finding",
                     origin: ChainId = KIND_ORIGIN, first_offset: int = 0) -> list[Record]:
    """A chain of evidence `kind` over `messages` (format v2), built by the chain step itself."""
    from aiaudit.pipeline.chain.step import InputMessage, chain_messages

    msgs = [InputMessage(v, b"k%d" % i, Source("ai.audit.alerts", 0, first_offset + i), (("h", b"v"),),
                         1_795_000_000_000 + i) for i, v in enumerate(messages)]
    return chain_messages(ChainHead.genesis(origin), signer, kind, msgs).records
