"""The witness as a separate process (`aiaudit witness serve`): the C2SP tlog-witness protocol over
HTTP, its durable state under kill -9, and an operator who rewrites history caught by it."""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline.chain import merkle
from aiaudit.pipeline.chain.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Checkpoint,
    NoteSigner,
    add_signatures,
    cosignatures,
    sign_checkpoint,
)
from aiaudit.pipeline.keys import ensure_checkpoint_key, load_checkpoint_key
from aiaudit.pipeline.witness.core import request_body
from tests.integration.support import free_port_pair, scrape

pytestmark = [pytest.mark.integration, pytest.mark.fault]

ORIGIN = "acme/prod/ai.requests/p0/g1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WitnessProcess:
    def __init__(self, tmp: Path, log_keys: dict[str, bytes], *, prefix: bool = False) -> None:
        self.key_file = tmp / "witness" / "witness.key"
        ensure_checkpoint_key(self.key_file)
        self.signer = NoteSigner.local("witness.example/w1", SIG_COSIGNATURE_V1, load_checkpoint_key(self.key_file))
        self.port = free_port()
        self.config = tmp / "witness.yaml"
        logs = [{"origin_prefix" if prefix else "origin": o, "key": base64.b64encode(k).decode()}
                for o, k in log_keys.items()]
        self.config.write_text(json.dumps({"name": self.signer.name, "key_file": str(self.key_file),
                                           "state_file": str(tmp / "witness" / "state.json"), "logs": logs}))
        self.log = tmp / "witness.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, metrics_port: int | None = None) -> None:
        out = open(self.log, "ab")  # noqa: SIM115  # handed to the child
        extra = ["--metrics-port", str(metrics_port)] if metrics_port else []
        self.proc = subprocess.Popen([sys.executable, "-m", "aiaudit.pipeline.cli", "witness", "serve", "--config",
                                      str(self.config), "--port", str(self.port), *extra], stdout=out,
                                     stderr=subprocess.STDOUT,
                                     env={k: v for k, v in os.environ.items() if not k.startswith("AIAUDIT_")})
        out.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/latest?origin=x", timeout=1)
            except urllib.error.HTTPError:
                return  # it answers (404: nothing cosigned for x)
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"witness did not start: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def add(self, old: int, proof: list[bytes], note: str) -> tuple[int, str]:
        req = urllib.request.Request(self.url + "/add-checkpoint", data=request_body(old, proof, note), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def latest(self, origin: str) -> dict:
        with urllib.request.urlopen(self.url + "/latest?origin=" + urllib.parse.quote(origin), timeout=5) as resp:
            return json.loads(resp.read())


LOG_KEY = Ed25519PrivateKey.generate()
LOG = NoteSigner.local(ORIGIN, SIG_ED25519, LOG_KEY)


def checkpoint(leaves: list[bytes], size: int) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, size, merkle.root_of(leaves[:size])), LOG)


def proof(leaves: list[bytes], old: int, size: int) -> list[bytes]:
    return merkle.consistency_proof(old, size, lambda a, b: merkle.root_of(leaves[a:b]))


def test_witness_speaks_the_protocol_and_its_cosignatures_verify(tmp_path):
    w = WitnessProcess(tmp_path, {ORIGIN: LOG.public_key})
    metrics_port = free_port_pair()
    w.start(metrics_port=metrics_port)
    try:
        leaves = [merkle.hash_leaf(str(i).encode()) for i in range(50)]
        status, body = w.add(0, [], checkpoint(leaves, 10))
        assert status == 200 and body.startswith("\u2014 witness.example/w1 ")
        assert cosignatures(add_signatures(checkpoint(leaves, 10), [body]), [w.signer.verifier]) == {
            w.signer.name: pytest.approx(int(time.time()), abs=30)}
        assert w.add(10, proof(leaves, 10, 30), checkpoint(leaves, 30))[0] == 200
        assert w.add(10, proof(leaves, 10, 40), checkpoint(leaves, 40)) == (409, "30\n")  # stale old size
        assert w.add(0, [], checkpoint(leaves, 10))[0] == 409  # a replayed request
        forked = [*leaves[:20], merkle.hash_leaf(b"rewritten"), *leaves[21:]]
        assert w.add(30, proof(forked, 30, 45), checkpoint(forked, 45))[0] == 422  # inconsistent
        assert w.add(30, [], checkpoint(forked, 30))[0] == 409  # same size, another root
        stranger = NoteSigner.local(ORIGIN, SIG_ED25519, Ed25519PrivateKey.generate())
        assert w.add(30, proof(leaves, 30, 45),
                     sign_checkpoint(Checkpoint(ORIGIN, 45, merkle.root_of(leaves[:45])), stranger))[0] == 403
        other = NoteSigner.local("elsewhere/log", SIG_ED25519, LOG_KEY)
        assert w.add(0, [], sign_checkpoint(Checkpoint(other.name, 3, merkle.root_of(leaves[:3])), other))[0] == 404
        assert w.add(31, [], checkpoint(leaves, 30))[0] == 400
        assert w.latest(ORIGIN)["size"] == 30
        # Its own /metrics: each add-checkpoint answer counted by status, as Prometheus reads it
        answered = {dict(labels)["code"]: v for (name, labels), v in scrape(metrics_port).items()
                    if name == "aiaudit_witness_requests_total"}
        assert answered == {"200": 2, "409": 3, "422": 1, "403": 1, "404": 1, "400": 1}, answered
    finally:
        w.stop()


def test_kill9_at_random_moments_never_forgets_a_cosigned_size_or_cosigns_a_fork(tmp_path):
    rng = random.Random(9162)
    w = WitnessProcess(tmp_path, {ORIGIN: LOG.public_key})
    leaves = [merkle.hash_leaf(str(i).encode()) for i in range(400)]
    w.start()
    acknowledged = 0  # the largest size the witness answered 200 for
    size = 0
    try:
        for _ in range(6):
            killer = threading.Timer(rng.uniform(0.05, 0.6), w.kill9)
            killer.start()
            while w.proc.poll() is None and size < len(leaves):
                new = min(len(leaves), size + rng.randint(1, 8))
                try:
                    status, body = w.add(size, proof(leaves, size, new), checkpoint(leaves, new))
                except (OSError, http.client.HTTPException):
                    break  # killed while we asked (or while it answered): nothing promised
                if status == 409:
                    size = int(body)  # what it last cosigned: continue from there
                    continue
                assert status == 200, body
                size = acknowledged = new
            killer.join()
            if w.proc.poll() is None:
                w.kill9()
            w.start()
            seen = w.latest(ORIGIN)
            # Persisted before it answered: never behind what it acknowledged, and on our one history.
            assert seen["size"] >= acknowledged
            assert base64.b64decode(seen["root"]) == merkle.root_of(leaves[:seen["size"]])
            size = seen["size"]
        forked = [*leaves[:5], merkle.hash_leaf(b"x"), *leaves[6:], *(merkle.hash_leaf(b"y%d" % i) for i in range(50))]
        status, _ = w.add(size, proof(forked, size, len(forked)), checkpoint(forked, len(forked)))
        assert status == 422 and w.latest(ORIGIN)["size"] == size
    finally:
        w.stop()


def test_an_operator_who_rewrites_history_and_reissues_checkpoints_is_caught_by_the_witness(settings, client, tmp_path):
    from aiaudit.pipeline import store
    from aiaudit.pipeline.chain.checkpoint import TreeState, checkpoint_note
    from aiaudit.pipeline.chain.record import ChainHead, ChainId, Source, build_record, parse_payload
    from aiaudit.pipeline.keys import active_key_file, checkpoint_key_file, load_signer, read_checkpoint_public_key
    from aiaudit.pipeline.store import checkpoints, evidence
    from aiaudit.pipeline.witness.submit import submit_once
    from tests.integration.support import verify_whole_with
    from tests.integration.test_checkpoints import _chain_to_signed_tail

    records = _chain_to_signed_tail(settings, client, tmp_path, 300)
    cp_path = checkpoint_key_file(settings.signing.keys_dir, None)
    w = WitnessProcess(tmp_path, {f"{settings.chain.org}/{settings.chain.env}/": read_checkpoint_public_key(cp_path)},
                       prefix=True)
    w.start()
    try:
        from prometheus_client import REGISTRY

        def counted(outcome: str) -> float:
            return REGISTRY.get_sample_value("aiaudit_witness_submissions_total",
                                             {"witness": w.signer.verifier.name, "outcome": outcome}) or 0.0
        before = counted("cosigned"), counted("already")
        outcomes = submit_once(client, settings, w.url, w.signer.verifier)
        assert counted("cosigned") - before[0] == len(outcomes)  # the submitter's metrics, as scraped
        from aiaudit.pipeline.metrics import chain_label

        for o in outcomes:  # each chain's cosignature time, labelled by its topic and partition only
            stamp = REGISTRY.get_sample_value("aiaudit_witness_cosigned_timestamp_seconds", {
                "witness": w.signer.verifier.name, "chain": chain_label(o.origin)})
            assert stamp is not None and time.time() - stamp < 60 and chain_label(o.origin) != "other", o.origin
        # every request chain, and the key-set chain (the emitter key set the chain worker checked with)
        assert {o.status for o in outcomes} == {"cosigned"} and len(outcomes) == len({r.origin for r in records}) + 1
        assert {o.status for o in submit_once(client, settings, w.url, w.signer.verifier)} == {"already"}
        assert counted("already") - before[1] == len(outcomes)
        assert verify_whole_with(settings, client, witness=(w.url, w.signer.verifier)).ok

        # The insider holds the record key and the checkpoint key: rewrite one chain, re-chain it, and
        # re-issue its checkpoints. The store is consistent with itself again ...
        origin = records[0].origin
        chain = sorted((r for r in records if r.origin == origin), key=lambda r: r.seq)
        signer, cp_key = load_signer(active_key_file(settings.signing.keys_dir, None)), load_checkpoint_key(cp_path)
        head, forged = ChainHead.genesis(ChainId(origin)), []
        for i, rec in enumerate(chain):
            obj = parse_payload(rec.payload)
            event = {**obj["event"], "route": "/rewritten"} if i == 2 else obj["event"]
            src = Source(obj["src"]["topic"], obj["src"]["partition"], obj["src"]["offset"])
            new = build_record(head, signer, obj["ts"], src, event)
            forged.append(new)
            head = new.next_head(src.offset)
        tree = merkle.CompactRange()
        for r in forged:
            tree.append(bytes.fromhex(r.leaf_hash))
        note = checkpoint_note(origin, tree, NoteSigner.local(origin, SIG_ED25519, cp_key))
        db = store.database(settings)
        client.command(f"DELETE FROM {db}.evidence WHERE origin = {{o:String}}", parameters={"o": origin})
        client.command(f"DELETE FROM {db}.checkpoints WHERE origin = {{o:String}}", parameters={"o": origin})
        store.insert(client, f"{db}.evidence", [evidence.row(r) for r in forged], evidence.COLUMNS)
        store.insert(client, f"{db}.checkpoints", [checkpoints.row(TreeState(origin, tree, (), note,
                                                                             "2026-11-29T00:00:00.000000Z"))],
                     checkpoints.COLUMNS)
        # ... so the store alone cannot tell, but for the emitter's signature over the altered event,
        assert verify_whole_with(settings, client, emitters=False).ok
        report = verify_whole_with(settings, client)
        assert [(f.origin, f.seq, f.reason) for f in report.failures] == [(origin, chain[2].seq, "unauthenticated_emitter")]
        # ... and the witness remembers what it cosigned.
        # Verified as `aiaudit verify --witness URL --witness-key VKEY` does it (the witness pinned and asked):
        # its stored cosignature no longer verifies over the re-issued checkpoint, and what it last
        # cosigned is not what the records give.
        report = verify_whole_with(settings, client, witness=(w.url, w.signer.verifier), emitters=False)
        assert [(f.origin, f.reason) for f in report.failures] == [(origin, "bad_checkpoint"),
                                                                   (origin, "witness_mismatch")], report.text()[-1500:]
        # And it will not cosign the rewritten history.
        refused = [o for o in submit_once(client, settings, w.url, w.signer.verifier) if o.origin == origin]
        assert refused and refused[0].status.startswith("refused: HTTP 409")
    finally:
        w.stop()
