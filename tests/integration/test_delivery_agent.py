"""The delivery agent (Faust) end to end on the real broker: findings on the alerts topic reach a
local webhook receiver that checks every signature, through kill -9 and restarts of the agent.

What is asserted from the receiver's side (the payloads, not only status codes): every finding a
destination accepts arrives, whole, with its chain coordinates; none is lost; the suppression
window holds (no second delivery of an identity's detector inside it); a delivery arrives twice
only when the agent was killed while it was in flight, under the same delivery id, and its record
says it was in doubt. A destination that fails first is retried; one that never answers is
dead-lettered with the finding whole; an unreadable alerts message is dead-lettered too; and
every outcome is a delivery record the sink stores and `aiaudit alerts history` shows.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from confluent_kafka import Producer

from aiaudit.detectors.rules import RuleHit
from aiaudit.pipeline import metrics
from aiaudit.pipeline.deliver.formats import DELIVERY_HEADER, verify_webhook
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.keys import load_or_create_scorer_key, scorer_key_file
from aiaudit.pipeline.ops.supervisor import start_worker
from aiaudit.pipeline.query.alerts import status_history
from aiaudit.pipeline.score.finding_signature import HEADER, header_value, sign_finding
from aiaudit.pipeline.score.ocsf import detection_finding
from tests.integration.support import SOAK, free_port_pair, read_topic, scrape, settings_env, sink_until_drained
from tests.integration.test_delivery_transports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.timeout(600)]
KILLS = 3 if SOAK else 1
SECRET = "hmac-key-for-the-delivery-test-0123"
SUPPRESS_S = 600
T0_MS = 1_795_900_000_000
ACTORS = ("ann@acme.example", "bob@acme.example", "svc-etl@acme.example", "cat@acme.example")
DETECTOR_SETS = (("prompt_injection",), ("denial_burst",), ("prompt_injection", "denial_burst"), ("request_burst",))


class Receiver:
    """An HTTP receiver in its own thread: checks each webhook's signature and replay window,
    keeps every request, answers 503 to the first try of each delivery on /flaky."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests: list[dict] = []
        self.refused: list[str] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(0.03)  # a delivery is in flight for a moment: room for a kill to land in it
        try:
            doc = verify_webhook(SECRET.encode(), dict(request.headers), body, time.time())
        except ValueError as exc:
            with self.lock:
                self.refused.append(str(exc))
            return web.Response(status=401, text=str(exc))
        path = request.path.strip("/")
        with self.lock:
            tries = sum(1 for r in self.requests if r["delivery"] == doc["delivery"])
            answer = 503 if path == "flaky" and tries == 0 else 200
            self.requests.append({"path": path, "delivery": request.headers[DELIVERY_HEADER], "doc": doc,
                                  "status": answer})
        return web.Response(status=answer, text="ok" if answer == 200 else "busy, try later")

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()

    def accepted(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path and r["status"] == 200]

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def stop_all(procs: list, receiver: Receiver) -> None:
    """Terminate the worker processes still running, then the receiver."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(30)
    receiver.stop()


def findings(wave: int, per_actor: int) -> list[dict]:
    out = []
    for a, actor in enumerate(ACTORS):
        for i in range(per_actor):
            n = wave * per_actor + i
            rules = DETECTOR_SETS[(n + a) % len(DETECTOR_SETS)]
            event = {"actor": {"id": actor, "type": "agent" if actor.startswith("svc") else "workforce"},
                     "decision": "allow", "event_id": f"e-{a}-{n}", "occurred_at": "2026-11-29T10:00:00.000000Z",
                     "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "route": "chat"}
            out.append(detection_finding(
                origin="itest/deliver/ai.requests/p0/g1", seq=a * 10_000 + n, leaf_hash=f"{a:02x}{n:062x}", event=event,
                score=0.5, severity=("medium", "high", "critical")[n % 3], explanation=[], model_version="m1",
                detected_at_ms=T0_MS + n * 150_000, rule_hits=[RuleHit(r, "high", f"test {n}") for r in rules]))
    return out


def publish(settings, items: list[dict | bytes], txid: str, *, signed: bool = True) -> None:
    """As the scorer does: keyed by identity, in a transaction (the agent reads read_committed),
    each finding signed with the scorer key (signed=False: as a forger without it would)."""
    key, _ = load_or_create_scorer_key(scorer_key_file(settings.signing.keys_dir, None))
    producer = Producer(kafka_config.transactional_producer(settings, txid))
    producer.init_transactions(30)
    producer.begin_transaction()
    for f in items:
        if isinstance(f, bytes):
            producer.produce(settings.kafka.alerts_topic, key=b"hostile", value=f)
        else:
            headers = [(HEADER, header_value(sign_finding(f, key)))] if signed else []
            producer.produce(settings.kafka.alerts_topic, key=f["actor"]["user"]["uid"].encode(), value=orjson.dumps(f),
                             headers=headers)
    producer.commit_transaction(30)


def expected_soc(all_findings: list[dict]) -> tuple[set[str], set[str]]:
    """(sent, suppressed) for the soc destination, by the rule written out here: per identity in
    time order, a finding is suppressed when each of its detectors went out under SUPPRESS_S before."""
    sent, quiet, last = set(), set(), {}
    for f in sorted(all_findings, key=lambda f: (f["actor"]["user"]["uid"], f["time"])):
        actor, at = f["actor"]["user"]["uid"], f["time"] / 1000
        dets = [d["detector"] for d in f["unmapped"]["detections"]]
        if all((actor, d) in last and at - last[actor, d] < SUPPRESS_S for d in dets):
            quiet.add(f["finding_info"]["uid"])
            continue
        sent.add(f["finding_info"]["uid"])
        for d in dets:
            last[actor, d] = at
    return sent, quiet


def test_findings_reach_the_receiver_once_through_kill9_with_retries_suppression_and_dead_letters(settings, client,
                                                                                                  tmp_path: Path):
    receiver = Receiver()
    closed = free_port()
    base = f"http://127.0.0.1:{receiver.port}"
    dest_file = tmp_path / "destinations.yaml"
    dest_file.write_text(f"""
destinations:
  - {{name: soc, kind: webhook, send: findings, url: "{base}/soc", secret_env: DELIVER_TEST_KEY, suppress_s: {SUPPRESS_S},
      backoff_s: 0.2, backoff_max_s: 1}}
  - {{name: flaky, kind: webhook, send: findings, url: "{base}/flaky", secret_env: DELIVER_TEST_KEY, min_severity: high,
      suppress_s: 0, backoff_s: 0.3, backoff_max_s: 1}}
  - {{name: down, kind: webhook, send: findings, url: "http://127.0.0.1:{closed}/x", secret_env: DELIVER_TEST_KEY,
      detectors: [denial_burst], suppress_s: 0, max_attempts: 2, backoff_s: 0.1, backoff_max_s: 0.2}}
""")
    env = {**settings_env(settings), "AIAUDIT_DELIVER__DESTINATIONS_FILE": str(dest_file), "DELIVER_TEST_KEY": SECRET}
    logs = tmp_path / "deliver.log"
    procs = []

    metrics_port = free_port_pair()

    def start():
        procs.append(start_worker("deliver", log_file=logs, env=env, extra=("--metrics-port", str(metrics_port))))
        return procs[-1]

    sent: list[dict] = []
    forged = findings(40, per_actor=1)  # uids no wave has (n = 40): published without the scorer's signature
    rng = random.Random(11)
    kills = 0
    try:
        proc = start()
        for wave in range(4):
            batch = findings(wave, per_actor=8)
            sent += batch
            before = receiver.count()
            publish(settings, batch + ([b"{not a finding"] if wave == 1 else []), f"itest-alerts-{wave}")
            if wave == 1:  # a writer to the alerts topic without the scorer key: dead-lettered, never delivered
                publish(settings, forged, "itest-forged", signed=False)
            if wave == 1:  # a writer to the agent's retries topic: refused, and the retries behind them still run
                forge = Producer(kafka_config.producer(settings))
                for junk in (b"junk", orjson.dumps({"delivery_uid": "x", "destination": "soc", "attempt": 2,
                                                    "due": 1e300, "finding": {"finding_info": {"uid": "x"}}}),
                             b'{"delivery_uid": "x", "destination": "soc", "attempt": 2, "due": 1e999, "finding": {}}'):
                    for p in range(settings.kafka.partitions):
                        forge.produce(settings.kafka.delivery_retries_topic, value=junk, partition=p)
                assert forge.flush(30) == 0
            if wave == 3:
                break
            if kills == KILLS:  # `make test`: one kill; `make soak`: one after each of the first three waves
                continue
            target = before + rng.randint(3, 25)  # kill -9 at a random point of this wave's deliveries
            deadline = time.monotonic() + 120
            while receiver.count() < target and time.monotonic() < deadline:
                assert proc.poll() is None, logs.read_text()[-3000:]
                time.sleep(0.005)
            assert receiver.count() >= target, f"no deliveries within 120 s\n{logs.read_text()[-3000:]}"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
            proc = start()

        soc_sent, soc_quiet = expected_soc(sent)
        flaky_want = {f["finding_info"]["uid"] for f in sent if f["severity"] in ("High", "Critical")}
        down_want = {f["finding_info"]["uid"] for f in sent
                     if "denial_burst" in {d["detector"] for d in f["unmapped"]["detections"]}}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            got_soc = {r["doc"]["finding"]["finding_info"]["uid"] for r in receiver.accepted("soc")}
            got_flaky = {r["doc"]["finding"]["finding_info"]["uid"] for r in receiver.accepted("flaky")}
            if got_soc >= soc_sent and got_flaky >= flaky_want:
                break
            time.sleep(0.5)
        time.sleep(3)  # the dead letters of the closed port follow their last retry
        records = [orjson.loads(m.value()) for m in read_topic(settings, settings.kafka.deliveries_topic)]
        dead = [orjson.loads(m.value()) for m in read_topic(settings, settings.kafka.delivery_dlq_topic, partitions=1)]
        counted = {dict(labels)["outcome"]: v for (name, labels), v in scrape(metrics_port).items()
                   if name == "aiaudit_deliveries_total"}
    finally:
        stop_all(procs, receiver)
    # The agent now running counts its deliveries by outcome (the one before the kill counted its own).
    assert counted.get("delivered", 0) > 0 and set(counted) <= set(metrics.OUTCOMES), counted
    assert sum(counted.values()) <= len(records)

    log_text = logs.read_text()
    assert kills == KILLS and not receiver.refused, receiver.refused
    assert "\x1b" not in log_text  # Faust's colour codes never reach the agent's log file
    forged_uids = {f["finding_info"]["uid"] for f in forged}
    delivered_uids = {r["doc"]["finding"]["finding_info"]["uid"] for d in ("soc", "flaky")
                      for r in receiver.accepted(d)}
    assert not forged_uids & delivered_uids
    unsigned = [d for d in dead if "unsigned finding" in str(d.get("reason", ""))]
    assert len({d["src"] for d in unsigned}) == len(forged), dead[-5:]
    # Nothing lost, nothing suppressed that should go out, and the payload is the finding whole.
    by_uid = {f["finding_info"]["uid"]: f for f in sent}
    soc = receiver.accepted("soc")
    missing = soc_sent - {r["doc"]["finding"]["finding_info"]["uid"] for r in soc}
    assert not missing, ([d for d in records if d["finding_uid"] in missing], log_text[-4000:])
    assert len(soc_sent) >= 20 and len(soc_quiet) >= 20, (len(soc_sent), len(soc_quiet))
    for r in soc:
        finding = r["doc"]["finding"]
        assert finding == by_uid[finding["finding_info"]["uid"]]
        assert finding["unmapped"]["chain"]["origin"] == "itest/deliver/ai.requests/p0/g1"
    # Twice only under the same delivery id, when a kill landed while it was in flight, and said so.
    in_doubt = {(d["destination"], d["delivery_uid"]) for d in records if d["detail"].get("in_doubt")}
    for path, rows in (("soc", soc), ("flaky", receiver.accepted("flaky"))):
        repeats = [uid for uid, n in Counter(r["delivery"] for r in rows).items() if n > 1]
        assert all((path, uid) in in_doubt for uid in repeats), (path, repeats, in_doubt)
        assert len(repeats) <= 4 * kills, (path, repeats)  # at most a lane of in_flight (4) per kill
    # Inside the window, one delivery per identity and detector (in-doubt repeats are the same delivery).
    last: dict[tuple[str, str], float] = {}
    for f in sorted((by_uid[u] for u in {r["doc"]["finding"]["finding_info"]["uid"] for r in soc}),
                    key=lambda f: f["time"]):
        fresh = [d["detector"] for d in f["unmapped"]["detections"]
                 if not ((f["actor"]["user"]["uid"], d["detector"]) in last and
                         f["time"] / 1000 - last[f["actor"]["user"]["uid"], d["detector"]] < SUPPRESS_S)]
        assert fresh, f"{f['finding_info']['uid']} went out inside the suppression window"
        for d in f["unmapped"]["detections"]:
            last[f["actor"]["user"]["uid"], d["detector"]] = f["time"] / 1000
    # Every outcome recorded: suppressed, retried after a 503, dead-lettered after the last attempt.
    outcome = defaultdict(set)
    for d in records:
        outcome[d["destination"], d["outcome"]].add((d["finding_uid"], d["attempt"]))
    assert {u for u, _ in outcome["soc", "suppressed"]} == soc_quiet
    assert {u for u, _ in outcome["soc", "delivered"]} == soc_sent
    # flaky answers 503 to each delivery's first request: a retry delivers it (or, when a kill landed
    # while that first request was in flight, the in-doubt resend of attempt 1 does)
    assert {u for u, n in outcome["flaky", "delivered"]} == flaky_want
    resent = {d["finding_uid"] for d in records if d["destination"] == "flaky" and d["detail"].get("in_doubt")}
    for u in flaky_want:
        assert (u, 1) in outcome["flaky", "failed"] and (u, 2) in outcome["flaky", "delivered"] or u in resent, u
    assert {u for u, n in outcome["down", "dead_lettered"] if n == 2} == down_want
    flaky_status = {d["status"] for d in records if d["destination"] == "flaky" and d["outcome"] == "failed"}
    assert flaky_status == {"503"}
    dead_findings = {d["finding"]["finding_info"]["uid"] for d in dead if "finding" in d and "delivery" in d}
    assert dead_findings == down_want
    assert any(d.get("reason", "").startswith("not a detection finding") for d in dead)

    # The sink stores the records; an alert's history shows its deliveries beside its status.
    sink_until_drained(settings, client)
    uid = sorted((flaky_want & soc_sent) - resent)[0]  # one that failed once, then was retried
    history = status_history(client, settings, uid)
    rows = [(h["status"], h["actor"]) for h in history]
    assert rows[0][0] == "raised"
    assert ("failed", "flaky") in rows and ("delivered", "flaky") in rows and ("delivered", "soc") in rows
    assert any(h["note"].startswith("attempt 1: 503") for h in history)


class Silent:
    """A receiver that accepts connections and never answers (a hung SIEM)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_destination_that_never_answers_delays_no_other(settings, tmp_path: Path):
    """Twenty findings, two destinations: one answers at once, one accepts the connection and never
    answers (60 s timeout, one attempt in flight). Delivered one finding at a time, the fast one
    would wait 20 x 60 s; it gets all twenty in well under one timeout, and the hung one holds at
    most its lane of one connection."""
    receiver, silent = Receiver(), Silent()
    dest_file = tmp_path / "destinations.yaml"
    dest_file.write_text(f"""
destinations:
  - {{name: hung, kind: webhook, send: findings, url: "http://127.0.0.1:{silent.port}/x", secret_env: DELIVER_TEST_KEY,
      suppress_s: 0, timeout_s: 60, in_flight: 1}}
  - {{name: soc, kind: webhook, send: findings, url: "http://127.0.0.1:{receiver.port}/soc", secret_env: DELIVER_TEST_KEY,
      suppress_s: 0}}
""")
    env = {**settings_env(settings), "AIAUDIT_DELIVER__DESTINATIONS_FILE": str(dest_file), "DELIVER_TEST_KEY": SECRET}
    logs = tmp_path / "deliver.log"
    proc = start_worker("deliver", log_file=logs, env=env)
    try:
        batch = findings(50, per_actor=5)
        publish(settings, batch, "itest-hung")
        want = {f["finding_info"]["uid"] for f in batch}
        published = time.monotonic()
        while time.monotonic() - published < 45:
            assert proc.poll() is None, logs.read_text()[-3000:]
            if {r["doc"]["finding"]["finding_info"]["uid"] for r in receiver.accepted("soc")} >= want:
                break
            time.sleep(0.2)
        took = time.monotonic() - published
        got = {r["doc"]["finding"]["finding_info"]["uid"] for r in receiver.accepted("soc")}
        held = len(silent.held)
    finally:
        proc.terminate()
        proc.wait(30)
        silent.close()
        receiver.stop()
    assert got == want, f"{len(got)} of {len(want)} after {took:.0f} s\n{logs.read_text()[-3000:]}"
    assert took < 45  # one timeout of the hung destination is 60 s; one at a time would be 20 of them
    assert held == 1, held  # its lane: one attempt outstanding, the other nineteen wait their turn
