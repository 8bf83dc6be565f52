"""Re-driving dead letters on the real broker: deliveries to a destination that was down are
dead-lettered; once it answers, `aiaudit alerts redeliver` gives each one more attempt, and they
arrive, whole, once; re-driving again sends nothing twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from aiaudit.pipeline.deliver.policy import Destination, delivery_uid
from aiaudit.pipeline.ops.supervisor import start_worker
from aiaudit.pipeline.query.alerts import status_history
from tests.integration.support import read_topic, settings_env, sink_until_drained
from tests.integration.test_delivery_agent import SECRET, Receiver, findings, publish
from tests.integration.test_delivery_transports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def wait_for(what: str, check, logs: Path, timeout_s: float = 90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout_s:.0f} s\n{logs.read_text()[-3000:]}")


def test_dead_letters_are_redriven_once_each_when_their_destination_answers_again(settings, client, tmp_path: Path):
    down_port, up = free_port(), Receiver()
    dest_file = tmp_path / "destinations.yaml"
    dest_file.write_text(f"""
destinations:
  - {{name: down, kind: webhook, send: findings, url: "http://127.0.0.1:{down_port}/x", secret_env: DELIVER_TEST_KEY,
      suppress_s: 0, max_attempts: 2, backoff_s: 0.1, backoff_max_s: 0.2}}
  - {{name: up, kind: webhook, send: findings, url: "http://127.0.0.1:{up.port}/up", secret_env: DELIVER_TEST_KEY, suppress_s: 0}}
""")
    env = {**settings_env(settings), "AIAUDIT_DELIVER__DESTINATIONS_FILE": str(dest_file), "DELIVER_TEST_KEY": SECRET}
    logs = tmp_path / "deliver.log"
    sent = findings(0, per_actor=2)  # 8 findings, 4 identities (partitions by identity)
    want = {f["finding_info"]["uid"] for f in sent}

    def redeliver(*extra: str, uid: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", "alerts", "redeliver", *([uid] if uid else []),
                               "--format", "json", "--by", "oncall@acme.example", *extra],
                              capture_output=True, text=True, timeout=120, env={**os.environ, **env})

    def dead_letters() -> list[dict]:
        return [orjson.loads(m.value()) for m in read_topic(settings, settings.kafka.delivery_dlq_topic, partitions=1)]

    agent = start_worker("deliver", log_file=logs, env=env)
    fixed = None
    try:
        publish(settings, sent, "itest-redrive")
        wait_for("every finding dead-lettered for `down`",
                 lambda: {d["finding"]["finding_info"]["uid"] for d in dead_letters()} >= want, logs)
        assert {r["doc"]["finding"]["finding_info"]["uid"] for r in up.accepted("up")} == want  # the other one had them

        dry = redeliver("--destination", "down", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        listed = orjson.loads(dry.stdout)
        assert {r["finding"] for r in listed} == want and {r["attempt"] for r in listed} == {3}
        assert "dry run: nothing written" in dry.stderr

        fixed = Receiver(port=down_port)  # the destination answers again
        time.sleep(2)
        assert fixed.count() == 0  # the dry run wrote nothing
        one = redeliver("--destination", "down", uid=sent[0]["finding_info"]["uid"])
        assert one.returncode == 0, one.stderr
        assert len(orjson.loads(one.stdout)) == 1
        wait_for("the one re-driven finding delivered", lambda: len(fixed.accepted("x")) == 1, logs)
        every = redeliver("--destination", "down")
        assert every.returncode == 0 and "8 re-drive(s) written" in every.stderr, every.stderr
        wait_for("every re-driven finding delivered",
                 lambda: {r["doc"]["finding"]["finding_info"]["uid"] for r in fixed.accepted("x")} >= want, logs)
        again = redeliver("--destination", "down")  # everything delivered since: the agent skips each
        assert again.returncode == 0, again.stderr
        time.sleep(4)
        records = [orjson.loads(m.value()) for m in read_topic(settings, settings.kafka.deliveries_topic)]
        unnamed = subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", "alerts", "redeliver"], capture_output=True,
                                 text=True, timeout=60, env={**os.environ, **env})
        assert unnamed.returncode == 2 and "required: --by" in unnamed.stderr, unnamed.stderr
    finally:
        agent.terminate()
        agent.wait(30)
        for r in (up, fixed):
            if r is not None:
                r.loop.call_soon_threadsafe(r.loop.stop)

    # Once each, whole, under the delivery's own id, as attempt 3 (after the 2 that failed).
    got = fixed.accepted("x")
    by_uid = {f["finding_info"]["uid"]: f for f in sent}
    assert sorted(r["doc"]["finding"]["finding_info"]["uid"] for r in got) == sorted(want), got
    dest = Destination("down", "webhook")
    for r in got:
        f = r["doc"]["finding"]
        assert f == by_uid[f["finding_info"]["uid"]]
        assert r["delivery"] == delivery_uid(dest, f["finding_info"]["uid"])
    down = [d for d in records if d["destination"] == "down"]
    assert sorted((d["finding_uid"], d["attempt"]) for d in down if d["outcome"] == "delivered") == \
        sorted((u, 3) for u in want)
    assert {d["detail"].get("redrive_by") for d in down if d["outcome"] == "delivered"} == {"oncall@acme.example"}
    assert sorted((d["finding_uid"], d["attempt"]) for d in down if d["outcome"] == "dead_lettered") == \
        sorted((u, 2) for u in want)
    assert len(up.accepted("up")) == len(want)  # the re-drives were for `down` only
    assert not fixed.refused and not up.refused
    # The alert's history: raised, delivered to `up`, dead-lettered for `down`, then delivered on the re-drive.
    sink_until_drained(settings, client)
    history = status_history(client, settings, sent[0]["finding_info"]["uid"])
    steps = [(h["status"], h["actor"]) for h in history]
    assert steps[0][0] == "raised" and ("dead_lettered", "down") in steps and steps[-1] == ("delivered", "down"), steps
    assert history[-1]["note"].startswith("attempt 3: 200") and "re-driven by oncall@acme.example" in history[-1]["note"]
