"""A store created by an older aiaudit gets the newer columns on connect, and its old rows hold
what their signed payload says (so they still verify). Runs in its own process (embedded chDB)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = r'''
import sys
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline import store
from aiaudit.pipeline.store import evidence
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.verify.sources import verify_store
from aiaudit.pipeline.verify.trust import Trust
from aiaudit.pipeline.store.filters import Filters
from tests.unit.helpers import build_chain, keyring_of

signer = Ed25519Signer.generate()
s = Settings()
old_columns = tuple(c for c in evidence.COLUMNS if c not in ("decision_reasons", "trace_id"))
client = store.connect(s, apply_ddl=False)
client.command("CREATE DATABASE aiaudit")
client.command("""CREATE TABLE aiaudit.evidence (origin LowCardinality(String), seq UInt64, leaf_hash String,
    prev String, kid LowCardinality(String), ts DateTime64(6, 'UTC'), src_topic LowCardinality(String),
    src_partition UInt32, src_offset UInt64, event_id String, emitter_id String, emitter_seq UInt64,
    actor_type LowCardinality(String), actor_id String, on_behalf_of Nullable(String), role LowCardinality(String),
    route LowCardinality(String), operation LowCardinality(String), provider LowCardinality(String),
    model LowCardinality(String), prompt_level LowCardinality(String), prompt_categories Array(String),
    response_level Nullable(String), policy_id LowCardinality(String), policy_version LowCardinality(String),
    decision LowCardinality(String), retention_scope LowCardinality(String), input_tokens UInt64,
    output_tokens UInt64, latency_us UInt64, payload String, sig String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY (origin, seq)""")
recs = build_chain(20, signer)
rows = [evidence.row(r) for r in recs]
index = [evidence.COLUMNS.index(c) for c in old_columns]
store.insert(client, "aiaudit.evidence", [[r[i] for i in index] for r in rows], old_columns)
client.close()
client = store.connect(s, must_exist=True)  # the DDL of this version runs: new columns, the view
reasons = client.query("SELECT decision_reasons FROM aiaudit.records ORDER BY seq LIMIT 1").result_rows[0][0]
assert reasons and isinstance(reasons[0], str), reasons
report = verify_store(client, s, Trust(keyring_of(signer)), Filters())
assert report.ok and report.records == 20, report.text()
print("migrated and verified")
'''


def test_an_older_store_is_migrated_on_connect_and_its_rows_still_verify(tmp_path):
    env = {"AIAUDIT_CLICKHOUSE__DSN": f"chdb://{tmp_path / 'chdb'}", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT, timeout=180)
    assert out.returncode == 0 and "migrated and verified" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
