"""Access to evidence is evidence (issue 23 item 3), on a real broker, real workers and chDB: every
read through aiaudit leaves a record signed by the process that served it, chained and listed; a
forged record is refused; a read that cannot be recorded is not served."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
import time
from datetime import datetime, timezone

import orjson
import pytest
from confluent_kafka import Producer

from aiaudit.pipeline.contract.access import access_message, digest_of
from aiaudit.pipeline.contract.analyst_keys import (
    ANALYSTS_DIR,
    key_set_file,
    load_analyst_keys,
    load_status_signer,
    new_analyst_key,
)
from aiaudit.pipeline.contract.analysts import ACCESS_SIG_DOMAIN, signed_message_problem
from aiaudit.pipeline.errors import StoreError
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.settings import KafkaSettings
from aiaudit.pipeline.store.access_log import AccessLog
from aiaudit.pipeline.store.api import RemoteClient, StoreServer
from tests.integration.support import ChainWorkers, emit_synthetic, read_topic, settings_env, wait_evidence_chained
from tests.integration.test_cli import aiaudit
from tests.integration.test_delivery_transports import free_port

pytestmark = pytest.mark.integration


def _wait_for(what, probe, timeout_s: float = 120.0, last=lambda: ""):
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} not within {timeout_s:.0f}s: {last()}"
        time.sleep(1)


def _forged(settings) -> list[bytes]:
    """Two access records no reader's key signed for whom they name: one unsigned, one soc-analyst-1
    signed and then re-attributed to an auditor."""
    body = access_message(op="export", what="SELECT * FROM evidence", rows=5, digest=digest_of([])[1],
                          outcome="served", host="attacker", at=datetime.now(timezone.utc))
    unsigned = {**body, "by": "auditor-x"}
    signed = load_status_signer(settings.signing.analyst_key_file).sign(body, domain=ACCESS_SIG_DOMAIN)
    return [orjson.dumps(unsigned), orjson.dumps({**signed, "by": "auditor-x"})]


def test_every_read_is_recorded_signed_chained_and_listed(settings, tmp_path):
    db = settings.clickhouse.database
    reader, _, _ = new_analyst_key(settings.signing.keys_dir / ANALYSTS_DIR, "local-reader", key_set_file(settings),
                                   console=True)  # the sink's store API signs with this host's reader key
    me = f"local:{getpass.getuser()}"
    with ChainWorkers(settings, tmp_path, env={"AIAUDIT_SIGNING__READER_KEY_FILE": str(reader)}) as workers:
        for name, role in (("w1", "chain"), ("e1", "evidence"), ("s1", "sink")):
            workers.start(name, role=role)
        _wait_for("the sink's store API", lambda: (settings.local.state_dir / "store-api.json").exists())
        emit_synthetic(settings, 50, emitter_id="edge-access", seed=5)
        _wait_for("50 records", lambda: (q := aiaudit(settings, "query", "--format", "json")).returncode == 0
                  and len(json.loads(q.stdout)) == 50)
        counted = aiaudit(settings, "sql", f"SELECT count() AS n FROM {db}.evidence", "--format", "json")
        assert json.loads(counted.stdout) == [{"n": 50}], counted.stderr
        producer = Producer(kafka_config.producer(settings))
        for value in _forged(settings):
            producer.produce(settings.kafka.access_topic, value=value)
        assert producer.flush(30) == 0
        wait_evidence_chained(settings)

        seen: list[str] = []

        def listed():
            out = aiaudit(settings, "access", "list", "--limit", "1000", "--format", "json")
            seen[:] = [out.stderr[-1500:], out.stdout[-1500:]]
            rows = json.loads(out.stdout) if out.returncode == 0 else []
            return rows if any(r["op"] == "sql" and "count()" in r["what"] for r in rows) else None
        rows = _wait_for("the access records in access_log", listed, last=lambda: "\n".join(seen))
        dead = aiaudit(settings, "sql", f"SELECT count() AS n FROM {db}.dead_letters "
                                        "WHERE reason = 'unauthenticated_reader'", "--format", "json")
        assert json.loads(dead.stdout) == [{"n": 2}], dead.stdout + dead.stderr + workers.logs()[-3000:]
    # Through the store API: the principal its token names, served via this host's reader key.
    assert {(r["principal"], r["via"]) for r in rows} == {(me, "local-reader")}, rows[:3]
    assert not [r for r in rows if r["principal"] == "auditor-x"]  # the forged ones are not shown as reads
    count = next(r for r in rows if r["op"] == "sql" and r["outcome"] == "served" and "count()" in r["what"])
    assert count["rows"] == 1 and count["digest"] == digest_of([(50,)])[1]  # what was served, digested
    assert {"query", "sql"} <= {r["op"] for r in rows} <= {"query", "sql", "access"}  # each says what it was for

    # With the sink stopped, the CLI serves itself: its record is signed by the analyst's own key.
    checked = aiaudit(settings, "verify", "--json")
    report = json.loads(checked.stdout)
    assert checked.returncode == 0 and report["ok"], checked.stdout[-2000:] + checked.stderr[-2000:]
    assert report["kinds"]["access"]["records"] >= len(rows), report["kinds"]
    written = [orjson.loads(m.value()) for m in read_topic(settings, settings.kafka.access_topic, partitions=1)]
    mine = [w for w in written if w["op"] == "verify"]
    keys = load_analyst_keys(key_set_file(settings))
    assert mine and all(w["by"] == "soc-analyst-1" and "via" not in w for w in mine)
    assert all(signed_message_problem("access", orjson.dumps(w), keys, at=w["at"][:19] + "Z") is None for w in mine)

    # No key to sign with: the read is refused before anything is read or printed.
    env = {**settings_env(settings), "AIAUDIT_SIGNING__KEYS_DIR": str(tmp_path / "no-keys")}
    env.pop("AIAUDIT_SIGNING__ANALYST_KEY_FILE")
    bare = subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", "query"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert bare.returncode != 0 and bare.stdout == "" and "recorded and signed" in bare.stderr, bare.stderr[-1000:]
    assert "Traceback" not in bare.stderr


def test_the_store_api_answers_nothing_it_cannot_record(settings, client, tmp_path):
    """Fail closed: with no broker to take the access record, the store API refuses the read."""
    down = settings.model_copy(update={"kafka": KafkaSettings(**{
        **settings.kafka.model_dump(), "bootstrap_servers": f"127.0.0.1:{free_port()}"})})
    for access, answered in ((AccessLog(down, timeout_s=3), False), (AccessLog(settings), True)):
        server = StoreServer(client, tmp_path, principal="local:tester", access=access)
        server.start()
        try:
            remote = RemoteClient.find(tmp_path)
            remote.op = "export"
            sql = f"SELECT count() AS n FROM {settings.clickhouse.database}.evidence"
            if answered:
                assert remote.query(sql).result_rows == [(0,)]
            else:
                with pytest.raises(StoreError, match="503.*refused"):
                    remote.query(sql)
        finally:
            server.close()
    (record,) = [orjson.loads(m.value()) for m in read_topic(settings, settings.kafka.access_topic, partitions=1)]
    # One record, of the read that was answered; an analyst's key signs for its analyst, whoever the token named.
    assert (record["by"], record["op"], record["rows"], record["digest"], record["outcome"]) == (
        "soc-analyst-1", "export", 1, digest_of([(0,)])[1], "served")
