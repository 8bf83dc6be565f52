"""emit -> chain -> sink -> query -> verify -> export, on the real broker and chDB."""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest
from confluent_kafka import Producer

from aiaudit.pipeline import names
from aiaudit.pipeline.contract.emitter_keys import key_set_file
from aiaudit.pipeline.emit.synthetic import forged_message, malformed_messages
from aiaudit.pipeline.export.read import read_export_file
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.keys import (
    KeyRing,
    checkpoint_key_file,
    ensure_operator_key,
    load_operator_key,
    operator_key_file,
    read_checkpoint_public_key,
    read_jwks,
    read_operator_public_key,
)
from aiaudit.pipeline.query.api import find_records
from aiaudit.pipeline.query.export import export_records
from aiaudit.pipeline.store.evidence import QUERY_COLUMNS as ALL_COLUMNS
from aiaudit.pipeline.store.filters import Filters
from aiaudit.pipeline.verify.run import verify_export
from aiaudit.pipeline.verify.trust import Trust
from tests.integration import independent_verify
from tests.integration.support import T0, ChainWorkers, emit_synthetic, read_topic, sink_until_drained, verify_store

pytestmark = pytest.mark.integration


def test_emit_chain_sink_query_verify_export(settings, client, tmp_path):
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        _, sent_a = emit_synthetic(settings, 1200, emitter_id="edge-a", seed=11)
        bad = [*malformed_messages(3, settings.chain.max_event_bytes), ("unauthenticated_emitter", forged_message(3))]
        raw = Producer(kafka_config.client(settings, **{"acks": "all", "enable.idempotence": True}))
        for _, data in bad:
            raw.produce(settings.kafka.requests_topic, value=data, key=b"bad")
        assert raw.flush(30) == 0
        _, sent_b = emit_synthetic(settings, 800, emitter_id="edge-b", seed=12)
        sink_until_drained(settings, client)
    sent = sent_a + sent_b

    # Everything acknowledged is in ClickHouse, once.
    rows = find_records(client, settings, Filters(limit=100_000), ALL_COLUMNS)
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in sent)

    # Retrieval by identity, vendor + time range, policy version, decision: checked against what was sent.
    alice = {e["event_id"] for e in sent if "alice@acme.example" in (e["actor"]["id"], e["actor"]["on_behalf_of"])}
    got = find_records(client, settings, Filters(actor="alice@acme.example", limit=100_000), ("event_id",))
    assert {r["event_id"] for r in got} == alice and alice
    t1, t2 = T0.replace(minute=0, second=20), T0.replace(minute=0, second=50)
    want = {e["event_id"] for e in sent if e["gen_ai_provider_name"] == "openai" and t1 <= e["occurred_at"] < t2}
    got = find_records(client, settings, Filters(provider="openai", since=t1, until=t2, limit=100_000), ("event_id",))
    assert {r["event_id"] for r in got} == want and want
    pv = sent[0]["policy_version"]
    got = find_records(client, settings, Filters(policy_version=pv, decision="deny", limit=100_000), ("event_id", "decision"))
    assert {r["event_id"] for r in got} == {e["event_id"] for e in sent if e["policy_version"] == pv and e["decision"] == "deny"}

    # Every chain verifies, and both emitters reconcile with no gap.
    report = verify_store(settings, client)
    assert report.ok, report.text()
    kinds = report.kinds()
    assert kinds["request"] == {"chains": settings.kafka.partitions, "records": 2000} and report.emitters == 2
    # The dead letters are evidence too: chained (their own kind), and the dead_letters table is
    # held to those chained records, row for row.
    assert kinds["dead_letter"]["records"] == len(bad) and report.projections["dead_letters"] == len(bad)

    # Bad input: each in the dead-letter topic, whole, with its reason; and in ClickHouse.
    dlq = read_topic(settings, settings.kafka.dead_letter_topic)
    reasons = Counter(dict(m.headers())[names.HDR_REASON].decode() for m in dlq)
    assert reasons == Counter(r for r, _ in bad)
    assert sorted(m.value() for m in dlq) == sorted(d for _, d in bad)
    dead = client.query(f"SELECT reason, count() FROM {settings.clickhouse.database}.dead_letters GROUP BY reason")
    assert Counter(dict(dead.result_rows)) == reasons

    # Export: someone with only the export and the JWKS verifies it with their own code.
    buf = io.StringIO()
    op_key = operator_key_file(settings.signing.keys_dir, None)
    ensure_operator_key(op_key)
    operator_pub = read_operator_public_key(op_key)
    done = export_records(client, settings, Filters(), buf, now=datetime.now(timezone.utc),
                          operator=load_operator_key(op_key))
    # A whole export holds every kind: the requests, the chained dead letters, and the emitter key
    # set the chain worker checked the events with (recorded with its first batch).
    assert done.records == 2000 + len(bad) + 1 and done.selection == "whole" and done.checkpoints >= settings.kafka.partitions
    lines = buf.getvalue().splitlines()
    jwks = read_jwks(settings.signing.keys_dir)
    pub = read_checkpoint_public_key(checkpoint_key_file(settings.signing.keys_dir, settings.signing.checkpoint_key_file))
    emitter_jwks = json.loads(key_set_file(settings).read_text())
    kinds: dict[str, int] = {}
    assert independent_verify.verify(lines, json.loads(json.dumps(jwks)), pub, emitter_jwks, operator_pub,
                                     kinds) == 2000 + len(bad) + 1
    assert kinds == {"dead_letter": len(bad), "key_set": 1}
    path = tmp_path / "export.jsonl"
    path.write_text(buf.getvalue())
    trust = Trust(KeyRing.from_jwks(jwks), (pub,), operator_keys=(operator_pub,))
    report = verify_export(read_export_file(path), trust)
    assert report.ok and report.checkpoints == done.checkpoints

    # The newest records of one chain cut from the file: the export's own checkpoints show it.
    parsed = [json.loads(x) for x in lines]
    origin = parsed[1]["origin"]
    newest = max(p["size"] for p in parsed if p.get("kind") == "checkpoint" and p["origin"] == origin)
    cut = [x for x, p in zip(lines, parsed) if not ("payload" in p and p["origin"] == origin and p["seq"] >= newest - 1)]
    path.write_text("\n".join(cut) + "\n")
    report = verify_export(read_export_file(path), trust)
    # An emitter whose later events are on other chains now lacks the cut ones: a gap where they were
    # (which events are a chain's newest depends on how the emitters' events met at the chain worker).
    kept, cut_seqs = defaultdict(set), defaultdict(set)
    for r in find_records(client, settings, Filters(limit=100_000), ("origin", "seq", "emitter_id", "emitter_seq")):
        gone = r["origin"] == origin and r["seq"] >= newest - 1
        (cut_seqs if gone else kept)[r["emitter_id"]].add(r["emitter_seq"])
    gaps = set()
    for emitter, seqs in cut_seqs.items():
        inside = sorted(s for s in seqs if s < max(kept[emitter], default=-1))
        gaps |= {(f"emitter:{emitter}", s, "emitter_gap") for i, s in enumerate(inside) if i == 0 or inside[i - 1] != s - 1}
    assert {(f.origin, f.seq, f.reason) for f in report.failures} == {("export", None, "export_altered"),
                                                                      (origin, newest - 1, "truncated")} | gaps
    assert report.failures[0].reason == "export_altered" and len(report.failures) == 2 + len(gaps)
    with pytest.raises(AssertionError, match="removed or added"):  # the independent verifier sees it too
        independent_verify.verify(cut, json.loads(json.dumps(jwks)), pub, emitter_jwks, operator_pub)


def test_the_sql_examples_for_data_teams_run(settings, client, tmp_path):
    """docs/sql.md: every example runs against a real pipeline run's store and finds what it should."""
    import re
    from pathlib import Path

    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        emit_synthetic(settings, 300, emitter_id="edge-sql", seed=21)
        sink_until_drained(settings, client)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sql.md").read_text()
    queries = re.findall(r"```sql\n(.*?)```", doc, re.S)
    assert len(queries) >= 8
    db = settings.clickhouse.database
    answers = [client.query(q.replace("aiaudit.", f"{db}.").replace("'2026-11-01'", "'2026-01-01'")
                            .replace("'2026-12-01'", "'2027-01-01'")).result_rows for q in queries]
    assert sum(r[3] for r in answers[0]) == 300  # who used which vendor: every request counted once
    assert all(row[2] is not None for row in answers[1])  # sent to a vendor
    assert sum(r[4] for r in answers[3]) == 300  # every decision under some policy version
