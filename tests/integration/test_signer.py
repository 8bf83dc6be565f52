"""Key custody on the real pipeline: the checkpoint key lives only in the signer process, which
signs a chain's checkpoint only as an extension of what it signed. Chain workers and the signer are
killed (-9) and restarted; every chain's tail ends signed by the signer's key, the store verifies
under it, a rewrite asked for with the worker's own token is refused, and a new generation closes
the old chains through the signer, which then signs nothing more for them."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from aiaudit.pipeline.chain.checkpoint import TreeState
from aiaudit.pipeline.chain.merkle import CompactRange, hash_leaf
from aiaudit.pipeline.chain.note import SIG_ED25519, Verifier, open_checkpoint
from aiaudit.pipeline.chain.record import Record
from aiaudit.pipeline.contract.emitter_keys import key_set_file, load_emitter_keys
from aiaudit.pipeline.keys import KeyRing, read_checkpoint_public_key, read_jwks
from aiaudit.pipeline.signer.core import request_body
from aiaudit.pipeline.store.filters import Filters
from aiaudit.pipeline.verify.sources import verify_store
from aiaudit.pipeline.verify.trust import Trust
from tests.integration.support import (
    ChainWorkers,
    emit_synthetic,
    read_topic,
    sink_until_drained,
    wait_chained,
    wait_evidence_chained,
)
from tests.integration.test_delivery_transports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.timeout(400)]
TOKEN = "signer-token-for-the-custody-test"


class Signer:
    def __init__(self, folder, port: int, log) -> None:
        self.folder, self.port, self.log = folder, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {"AIAUDIT_SIGNER_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
        self.proc = subprocess.Popen([sys.executable, "-m", "aiaudit.pipeline.cli", "signer", "serve", str(self.folder),
                                      "--port", str(self.port)], env=env, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/state", timeout=1)
            except urllib.error.HTTPError:
                return  # 401 without the token: it is up
            except OSError:
                time.sleep(0.2)
        raise AssertionError(self.log.read_text())

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def test_checkpoints_come_from_the_signer_only_through_kill9_of_worker_and_signer(settings, client, tmp_path):
    folder = tmp_path / "signer"
    subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", "signer", "init", str(folder)], check=True)
    pub_file = folder / "checkpoint.pub"
    port = free_port()
    signer = Signer(folder, port, tmp_path / "signer.log")
    signer.start()
    url = f"http://127.0.0.1:{port}"
    custody = settings.updated(chain={"signer_url": url}, signing={"checkpoint_key_file": pub_file})
    try:
        with ChainWorkers(custody, tmp_path, env={"AIAUDIT_SIGNER_TOKEN": TOKEN}) as workers:
            workers.start("w1")
            emit_synthetic(settings, 300, emitter_id="edge-sg-a", seed=5)
            time.sleep(3)  # some checkpoints signed, some records past them
            workers.kill9("w1")
            signer.kill9()  # the signer goes down too: the chain goes on, its checkpoints wait
            workers.start("w2")  # resumes with an unsigned tail and no signer to ask
            emit_synthetic(settings, 300, emitter_id="edge-sg-b", seed=6)
            wait_chained(settings)  # chained while the signer is down
            time.sleep(2.5)  # past a checkpoint interval: w2 asked for one and met the outage
            signer.start()  # its state survived the kill: it still knows what it signed
            emit_synthetic(settings, 100, emitter_id="edge-sg-c", seed=7)
            # The key set the chain workers checked the events with is chained too, under the same signer.
            workers.start("ev1", role="evidence")
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                records = [Record.from_wire(m.value()) for m in read_topic(settings, settings.kafka.chain_topic)]
                sizes: dict[str, int] = {}
                for r in records:
                    sizes[r.origin] = max(sizes.get(r.origin, 0), r.seq + 1)
                signed: dict[str, int] = {}
                states = [TreeState.from_wire(m.value()) for m in read_topic(settings, settings.kafka.checkpoints_topic)]
                for st in states:
                    if st.note is not None:
                        signed[st.origin] = max(signed.get(st.origin, 0), st.size)
                if len(records) == 700 and signed == sizes:
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"tails not signed: {signed} vs {sizes}\n{workers.logs()}")
            wait_evidence_chained(custody)
            time.sleep(custody.chain.checkpoint_interval_s + 1.5)  # and its checkpoint signed
            logs = (tmp_path / "chain-w2.log").read_text()
    finally:
        if signer.proc and signer.proc.poll() is None:
            signer.proc.terminate()
            signer.proc.wait(10)

    # Every note is the signer's key's, never the checkpoint key in the worker's keys folder.
    pub = read_checkpoint_public_key(pub_file)
    local = read_checkpoint_public_key(settings.signing.keys_dir / "checkpoint" / "checkpoint.pub")
    assert pub != local
    for st in states:
        if st.note is not None:
            cp = open_checkpoint(st.note, Verifier(st.origin, SIG_ED25519, pub))
            assert (cp.size, cp.root) == (st.size, st.range.root())
    assert "its checkpoints wait for the signer" in logs or "signed when it answers" in logs, logs

    sink_until_drained(settings, client, evidence=False)  # chained by the worker above, under the signer
    keyring = KeyRing.from_jwks(read_jwks(settings.signing.keys_dir)).with_emitters(
        load_emitter_keys(key_set_file(settings), required=True))
    report = verify_store(client, settings, Trust(keyring, (pub,)), Filters())
    assert report.ok and report.checkpoints >= len(sizes), report.text()[-2000:]
    report = verify_store(client, settings, Trust(keyring, (local,)), Filters())
    assert not report.ok  # the worker's own folder holds no key these checkpoints verify under

    # Someone on the worker's host, token in hand, asks for a rewrite of a signed chain: refused.
    origin = sorted(sizes)[0]
    forged = b"".join(hash_leaf(b"forged %d" % i) for i in range(sizes[origin] + 5))
    signer.start()
    try:
        req = urllib.request.Request(f"{url}/sign", data=request_body(origin, CompactRange(), forged), method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 409
        assert json.loads(refused.value.read())["reason"].startswith("not an extension")
        req = urllib.request.Request(f"{url}/sign", data=request_body(origin, CompactRange(), forged), method="POST",
                                     headers={"Authorization": "Bearer " + base64.b64encode(b"guess" * 6).decode()})
        with pytest.raises(urllib.error.HTTPError) as unauthorised:
            urllib.request.urlopen(req, timeout=10)
        assert unauthorised.value.code == 401

        # A new generation: its worker closes every generation-1 chain through the signer, which then
        # signs nothing more for them.
        (tmp_path / "g2").mkdir()
        with ChainWorkers(custody.updated(chain={"generation": 2}), tmp_path / "g2",
                          env={"AIAUDIT_SIGNER_TOKEN": TOKEN}) as workers:
            workers.start("g2")
            deadline = time.monotonic() + 60
            while (tmp_path / "g2" / "chain-g2.log").read_text().count("closed at size") < len(sizes):
                assert time.monotonic() < deadline, workers.logs()
                time.sleep(0.5)
        signed_state = json.loads((folder / "signed.json").read_text())
        assert {o for o, v in signed_state.items() if v.get("final")} == set(sizes)
        assert all(signed_state[o]["size"] == n for o, n in sizes.items())
        with pytest.raises(urllib.error.HTTPError) as closed:
            urllib.request.urlopen(urllib.request.Request(
                f"{url}/sign", data=request_body(origin, CompactRange(), b""), method="POST",
                headers={"Authorization": f"Bearer {TOKEN}"}), timeout=10)
        assert closed.value.code == 409 and json.loads(closed.value.read())["reason"].startswith("closed")
    finally:
        signer.proc.terminate()  # type: ignore[union-attr]
        signer.proc.wait(10)  # type: ignore[union-attr]
