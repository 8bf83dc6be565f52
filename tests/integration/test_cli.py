"""The `aiaudit` command line as users run it, against a real pipeline run (real Kafka, chDB)."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import sys

import pytest

from aiaudit.pipeline import store
from tests.integration.support import ChainWorkers, emit_synthetic, settings_env, sink_until_drained

pytestmark = pytest.mark.integration


def aiaudit(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", *args], capture_output=True, text=True,
                          env=settings_env(settings), timeout=120)


def test_query_verify_export_and_a_tampered_row(settings, client, tmp_path):
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        _, sent = emit_synthetic(settings, 600, emitter_id="edge-cli", seed=31)
        sink_until_drained(settings, client)
    client.close()  # embedded chDB admits one process at a time: the CLI's turn

    ok = aiaudit(settings, "verify", "--json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] and report["kinds"]["request"]["records"] == 600 and report["emitters"] == 1

    q = aiaudit(settings, "query", "--actor", "bob@acme.example", "--format", "csv", "--limit", "1000")
    assert q.returncode == 0, q.stderr
    rows = list(csv.DictReader(io.StringIO(q.stdout)))
    want = [e for e in sent if "bob@acme.example" in (e["actor"]["id"], e["actor"]["on_behalf_of"])]
    assert len(rows) == len(want) > 0
    assert all("bob@acme.example" in (r["actor_id"], r["on_behalf_of"]) for r in rows)

    out = tmp_path / "export.jsonl"
    ex = aiaudit(settings, "export", "--out", str(out))
    # every request, and the emitter key set the chain worker checked them with (a whole export holds every kind)
    assert ex.returncode == 0 and sum('"payload"' in x for x in out.read_text().splitlines()) == 600 + 1
    assert "exported 601 record(s) (whole)" in ex.stderr
    v = aiaudit(settings, "verify", "--export", str(out), "--jwks", str(settings.signing.keys_dir / "jwks.json"))
    assert v.returncode == 0 and "All chains valid" in v.stdout

    # Finding things: vendor names in any case, a declared policy version for all its bundles,
    # JSON as one array, and a note when the result is cut.
    by_vendor = [json.loads(aiaudit(settings, "query", "--vendor", v, "--limit", "1000", "--format", "json").stdout)
                 for v in ("openai", "OpenAI")]
    assert by_vendor[0] == by_vendor[1] and len(by_vendor[0]) == sum(e["gen_ai_provider_name"] == "openai" for e in sent) > 0
    declared = sent[0]["policy_version"].split("+")[0]
    under = aiaudit(settings, "query", "--policy-version", declared, "--limit", "1000", "--format", "jsonl")
    assert len(under.stdout.splitlines()) == sum(e["policy_version"].startswith(declared + "+") for e in sent) > 0
    listed = aiaudit(settings, "gateway", "policies")
    assert listed.returncode == 0, listed.stderr
    for version in {e["policy_version"] for e in sent}:  # synthetic versions: decided, never published
        assert version in listed.stdout
    assert "NO: no bundle to show" in listed.stdout
    cut = aiaudit(settings, "query", "--limit", "5")
    assert cut.returncode == 0 and "more records match than the 5 shown" in cut.stderr
    whole = aiaudit(settings, "query", "--limit", "600")
    assert "more records match" not in whole.stderr and "600 record(s)" in whole.stderr

    # The auditor's central request: everything one person did, as a passing evidence set. Other
    # people's records (and their emitter numbers) are left out, and that is not a failure.
    mine = aiaudit(settings, "verify", "--actor", "bob@acme.example", "--json")
    assert mine.returncode == 0, mine.stdout + mine.stderr
    sample = json.loads(mine.stdout)
    assert sample["ok"] and sample["sample"] and sample["records"] == len(want)
    unproven = sum(int(w.split(": ")[1].split(" ")[0]) for w in sample["warnings"] if "not yet provable" in w)
    assert sample["proven_included"] + unproven == len(want) and sample["proven_included"] > 0
    bob = tmp_path / "bob.jsonl"
    ex = aiaudit(settings, "export", "--actor", "bob@acme.example", "--out", str(bob))
    assert ex.returncode == 0 and f"exported {len(want)} record(s) (sample)" in ex.stderr, ex.stderr
    v = aiaudit(settings, "verify", "--export", str(bob))
    assert v.returncode == 0 and "All chains valid" in v.stdout and "proven included" in v.stdout, v.stdout
    # A record of the sample rewritten in the file (re-encoded, signature kept): caught, located.
    lines = bob.read_text().splitlines()
    i = next(i for i, x in enumerate(lines) if '"payload"' in x and json.loads(x)["seq"] < sample_size(lines, x))
    rec = json.loads(lines[i])
    body = json.loads(base64.b64decode(rec["payload"]))
    body["event"]["decision"] = "allow" if body["event"]["decision"] != "allow" else "deny"
    rec["payload"] = base64.b64encode(json.dumps(body, separators=(",", ":"), sort_keys=True).encode()).decode()
    lines[i] = json.dumps(rec)
    bob.write_text("\n".join(lines) + "\n")
    bad = aiaudit(settings, "verify", "--export", str(bob))
    assert bad.returncode == 1
    assert f"FAIL {rec['origin']} seq {rec['seq']}: not_included" in bad.stdout, bad.stdout

    # Someone edits one typed column in ClickHouse: verify names the chain, the seq and the reason, exits 1.
    c = store.connect(settings)
    origin, seq = c.query(f"SELECT origin, seq FROM {settings.clickhouse.database}.evidence ORDER BY origin, seq LIMIT 1 OFFSET 7").result_rows[0]
    c.command(f"ALTER TABLE {settings.clickhouse.database}.evidence UPDATE actor_id = 'mallory@evil.example' "
              f"WHERE origin = '{origin}' AND seq = {seq} SETTINGS mutations_sync = 1")
    c.close()
    bad = aiaudit(settings, "verify")
    assert bad.returncode == 1
    assert f"FAIL {origin} seq {seq}: column_mismatch: column actor_id = 'mallory@evil.example'" in bad.stdout
    assert "1 failure(s)" in bad.stdout

    missing = aiaudit(settings, "verify", "--export", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and missing.stderr.startswith("aiaudit: error:")


def sample_size(lines: list[str], record_line: str) -> int:
    """The checkpoint size a sample export proves `record_line`'s chain against (0 if none)."""
    origin = json.loads(record_line)["origin"]
    return max((json.loads(x)["size"] for x in lines if '"kind":"checkpoint"' in x and json.loads(x)["origin"] == origin),
               default=0)


def test_keys_generate_and_jwks(settings, tmp_path):
    keys = tmp_path / "newkeys"
    first = aiaudit(settings, "keys", "generate", "--dir", str(keys))
    second = aiaudit(settings, "keys", "generate", "--dir", str(keys))
    assert first.returncode == second.returncode == 0
    jwks = json.loads(aiaudit(settings, "keys", "jwks", "--dir", str(keys)).stdout)
    assert len(jwks["keys"]) == 2 and all(k["crv"] == "Ed25519" and "d" not in k for k in jwks["keys"])
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in keys.glob("*.key"))


def test_emit_from_a_jsonl_file_and_verify_a_time_range(settings, client, tmp_path):
    from aiaudit.pipeline.contract import to_json_event
    from aiaudit.pipeline.emit.synthetic import SyntheticEvents
    from tests.integration.support import T0

    gen = SyntheticEvents(41, T0, "file")
    lines = [json.dumps(to_json_event(gen.next_event())) for _ in range(40)]
    good = tmp_path / "events.jsonl"
    good.write_text("\n".join(lines) + "\n")
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        sent = aiaudit(settings, "emit", "--file", str(good), "--emitter-id", "edge-file")
        assert sent.returncode == 0 and "40 acknowledged" in sent.stdout, sent.stderr
        bad = tmp_path / "bad.jsonl"
        bad.write_text(lines[0] + "\n" + json.dumps({**json.loads(lines[1]), "decision": "maybe"}) + "\n")
        refused = aiaudit(settings, "emit", "--file", str(bad))
        assert refused.returncode == 2 and f"{bad}:2:" in refused.stderr and "decision" in refused.stderr
        sink_until_drained(settings, client)
    client.close()
    events = [json.loads(line) for line in lines]
    since, until = events[10]["occurred_at"], events[20]["occurred_at"]
    ranged = aiaudit(settings, "verify", "--since", since, "--until", until, "--json")
    assert ranged.returncode == 0, ranged.stdout + ranged.stderr
    report = json.loads(ranged.stdout)
    # Each chain slice holding the range is checked, with the record before it as the anchor.
    assert report["ok"] and 10 <= report["records"] <= 41


def test_verify_with_a_pinned_trust_file_and_proofs_from_the_cli(settings, client, tmp_path):
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from aiaudit.pipeline.chain import merkle
    from aiaudit.pipeline.chain.note import SIG_ED25519, NoteSigner, Verifier, open_checkpoint
    from aiaudit.pipeline.keys import checkpoint_key_file, read_checkpoint_public_key, read_jwks

    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        emit_synthetic(settings, 400, emitter_id="edge-trust", seed=41)
        sink_until_drained(settings, client)
        import time

        time.sleep(settings.chain.checkpoint_interval_s + 1.5)  # quiet chains get their last size signed
        sink_until_drained(settings, client)
    client.close()
    pub = read_checkpoint_public_key(checkpoint_key_file(settings.signing.keys_dir, None))
    trust = tmp_path / "trust.json"
    trust.write_text(json.dumps({"record_keys": read_jwks(settings.signing.keys_dir),
                                 "checkpoint_keys": [base64.b64encode(pub).decode()]}))
    ok = aiaudit(settings, "verify", "--trust", str(trust), "--json")
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr
    assert json.loads(ok.stdout)["checkpoints"] >= 4

    # `trust init` pins what is in force now: record, checkpoint, operator and emitter keys.
    made = tmp_path / "made-trust.json"
    init = aiaudit(settings, "trust", "init", "--out", str(made))
    assert init.returncode == 0 and "1 operator key(s)" in init.stdout, init.stdout + init.stderr
    doc = json.loads(made.read_text())
    assert doc["checkpoint_keys"] == [base64.b64encode(pub).decode()] and doc["require_emitter_signatures"] is True
    again = aiaudit(settings, "trust", "init", "--out", str(made))
    assert again.returncode == 2 and "--force" in again.stderr
    pinned = aiaudit(settings, "verify", "--trust", str(made), "--json")
    assert pinned.returncode == 0 and json.loads(pinned.stdout)["checkpoints"] >= 4, pinned.stdout[-2000:]
    # The auditor's monitor state: made on the first run, and a root it remembers differently fails.
    state = tmp_path / "monitor.json"
    first = aiaudit(settings, "verify", "--state", str(state), "--json")
    assert first.returncode == 0, first.stdout[-2000:]
    remembered = json.loads(state.read_text())
    assert len(remembered["chains"]) >= 1 and all(c["size"] > 0 for c in remembered["chains"].values())
    victim = sorted(remembered["chains"])[0]
    remembered["chains"][victim]["root"] = "00" * 32
    state.write_text(json.dumps(remembered))
    again = aiaudit(settings, "verify", "--state", str(state), "--json")
    assert again.returncode == 1
    assert [(f["origin"], f["reason"]) for f in json.loads(again.stdout)["failures"]] == \
        [(victim, "inconsistent_with_state")], again.stdout[-2000:]
    sealed = tmp_path / "sealed.jsonl"
    assert aiaudit(settings, "export", "--out", str(sealed)).returncode == 0
    assert aiaudit(settings, "verify", "--export", str(sealed), "--trust", str(made)).returncode == 0

    foreign = NoteSigner.local("x", SIG_ED25519, Ed25519PrivateKey.generate()).public_key
    trust.write_text(json.dumps({"record_keys": read_jwks(settings.signing.keys_dir),
                                 "checkpoint_keys": [base64.b64encode(foreign).decode()]}))
    bad = aiaudit(settings, "verify", "--trust", str(trust))
    assert bad.returncode == 1 and "bad_checkpoint" in bad.stdout
    trust.write_text('{"record_keys": {}, "checkpoint_keys": []}')
    refused = aiaudit(settings, "verify", "--trust", str(trust))
    assert refused.returncode == 2 and "not a trust file" in refused.stderr and "Traceback" not in refused.stderr

    origin = json.loads(ok.stdout)["chains"][0]["origin"]
    proof = aiaudit(settings, "proof", "inclusion", "--origin", origin, "--seq", "3")
    assert proof.returncode == 0, proof.stderr
    p = json.loads(proof.stdout)
    cp = open_checkpoint(p["checkpoint"], Verifier(origin, SIG_ED25519, pub))
    merkle.verify_inclusion(3, p["size"], base64.b64decode(p["leaf_hash"]), [base64.b64decode(h) for h in p["proof"]],
                            cp.root)
    missing = aiaudit(settings, "proof", "inclusion", "--origin", origin, "--seq", str(p["size"] + 10))
    assert missing.returncode == 2 and "is not in" in missing.stderr


def test_the_developer_guide_example_runs_as_written(settings, tmp_path):
    """docs/developer.md opens with a complete example: run it against the test broker."""
    import re
    from pathlib import Path

    from aiaudit.pipeline.contract.emitter_keys import key_set_file, new_emitter_key
    from tests.integration.support import read_topic

    doc = (Path(__file__).resolve().parents[2] / "docs" / "developer.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    key, _, _ = new_emitter_key(settings.signing.keys_dir / "emitters", "billing-service", key_set_file(settings))
    env = {**settings_env(settings), "AIAUDIT_EMITTER__KEY_FILE": str(key)}  # as the docs say
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.fullmatch(r"sent as billing-service-[0-9a-f-]{36} #0\n", out.stdout)
    assert len(read_topic(settings, settings.kafka.requests_topic, read_committed=False)) == 1


def test_analysts_query_and_verify_while_the_sink_holds_the_embedded_store(settings, tmp_path):
    """Embedded chDB admits one process: the running sink serves reads to the CLI meanwhile."""
    import time

    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        workers.start("s1", role="sink")
        # The sink must hold the store before a CLI command opens it: a command that opens the
        # embedded store in the moment the sink starts takes its lock, and the sink stops with
        # "embedded chDB admits one process" (a known limit, docs/guarantees.md).
        opened = time.monotonic() + 60
        while not (settings.local.state_dir / "store-api.json").exists():
            assert time.monotonic() < opened, workers.logs()[-3000:]
            time.sleep(0.2)
        emit_synthetic(settings, 300, emitter_id="edge-live", seed=41)
        deadline, rows = time.monotonic() + 90, []
        while time.monotonic() < deadline:
            q = aiaudit(settings, "query", "--limit", "1000", "--format", "json")
            if q.returncode == 0:
                rows = json.loads(q.stdout)
                if len(rows) == 300:
                    break
            time.sleep(1)
        assert len(rows) == 300, (q.returncode, q.stderr[-1000:], workers.logs()[-3000:])
        assert (settings.local.state_dir / "store-api.json").exists()  # the sink serves reads ...
        probe = subprocess.run([sys.executable, "-c", "from aiaudit.pipeline import store; from aiaudit.pipeline.settings import Settings; "
                                "print(type(store.connect(Settings(), must_exist=True)).__name__)"],
                               capture_output=True, text=True, env=settings_env(settings), timeout=60)
        assert probe.stdout.strip() == "RemoteClient", probe.stderr[-1000:]  # ... and the CLI reads through it
        live = aiaudit(settings, "verify", "--json")
        assert live.returncode == 0 and json.loads(live.stdout)["records"] == 300, live.stdout[-2000:] + live.stderr
        sample = aiaudit(settings, "verify", "--actor", "bob@acme.example", "--json")
        assert sample.returncode == 0 and json.loads(sample.stdout)["sample"], sample.stdout[-2000:] + sample.stderr
        alerts = aiaudit(settings, "alerts", "list")
        assert alerts.returncode == 0, alerts.stderr
        # While the sink holds the store: the policies in force, SQL, one request by its id.
        policies = aiaudit(settings, "gateway", "policies")
        assert policies.returncode == 0 and "DB::Exception" not in policies.stderr, policies.stderr
        bundle = aiaudit(settings, "gateway", "policy", "--version", "nope")
        assert bundle.returncode == 1 and "no policy bundle nope" in bundle.stderr, bundle.stderr
        sql = aiaudit(settings, "sql", f"SELECT count() AS n FROM {settings.clickhouse.database}.evidence", "--format",
                      "json")
        assert sql.returncode == 0 and json.loads(sql.stdout) == [{"n": 300}], sql.stdout + sql.stderr
        for hostile in (f"INSERT INTO {settings.clickhouse.database}.evidence (origin) VALUES ('x')",
                        "SELECT * FROM file('/etc/passwd', 'LineAsString')", "SELECT 1 SETTINGS readonly = 0"):
            refused = aiaudit(settings, "sql", hostile)
            assert refused.returncode == 2 and "not served" in refused.stderr, refused.stderr
        one = json.loads(aiaudit(settings, "sql", f"SELECT event_id FROM {settings.clickhouse.database}.evidence "
                                 "ORDER BY event_id LIMIT 1", "--format", "json").stdout)[0]["event_id"]
        by_id = aiaudit(settings, "query", "--event-id", one, "--all-columns", "--format", "json")
        assert by_id.returncode == 0 and [r["event_id"] for r in json.loads(by_id.stdout)] == [one], by_id.stderr
    # Once the sink stops, its API is gone and the CLI opens the store itself.
    assert not (settings.local.state_dir / "store-api.json").exists()
    assert aiaudit(settings, "verify").returncode == 0
