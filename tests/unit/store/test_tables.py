import base64
import json

from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.store import evidence
from aiaudit.pipeline.store.dead_letters import parse_src
from tests.unit.helpers import build_chain


def test_evidence_row_keeps_signed_bytes_verbatim_and_columns_from_the_payload():
    rec = build_chain(1, Ed25519Signer.generate())[0]
    row = dict(zip(evidence.COLUMNS, evidence.row(rec)))
    assert row["payload"].encode("utf-8") == rec.payload
    assert base64.b64decode(row["sig"]) == rec.sig and row["leaf_hash"] == rec.leaf_hash
    ev = json.loads(rec.payload)["event"]
    assert row["actor_id"] == ev["actor"]["id"] and row["provider"] == ev["gen_ai_provider_name"]
    assert row["policy_version"] == ev["policy_version"] and row["seq"] == 0
    assert row["ts"].tzinfo is not None


def test_dead_letter_source_header_falls_back_on_bad_input():
    assert parse_src("ai.requests/3/41", ("dlq", 0, 9)) == ("ai.requests", 3, 41)
    assert parse_src("garbage", ("dlq", 0, 9)) == ("dlq", 0, 9)
    assert parse_src("a/b/c", ("dlq", 1, 2)) == ("dlq", 1, 2)


def test_a_refused_request_has_no_provider_column_and_reasons_and_trace_are_columns():
    from aiaudit.pipeline.chain.record import ChainHead, ChainId, Source, build_record, parse_payload
    from aiaudit.pipeline.keys import Ed25519Signer
    from aiaudit.pipeline.store.evidence import columns_of
    from tests.unit.helpers import events

    ev = dict(events(1)[0], gen_ai_provider_name="none", decision="deny", decision_reasons=["role may not use route"],
              trace_id="0af7651916cd43dd8448eb211c80319c")
    rec = build_record(ChainHead.genesis(ChainId("o/e/t/p0/g1")), Ed25519Signer.generate(), ev["occurred_at"],
                       Source("t", 0, 0), ev)
    cols = columns_of(parse_payload(rec.payload))
    assert cols["provider"] is None and cols["decision_reasons"] == ["role may not use route"]
    assert cols["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
