"""`aiaudit gateway serve --workers N` as a platform engineer runs it: one port, N processes, each
request recorded by whichever process served it under its own emitter id (numbered from 0), the
metrics of all of them on one port, and a process killed with -9 replaced while the port keeps
answering. The vendor is the fake upstream; the broker is the suite's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from aiaudit.pipeline import contract
from aiaudit.pipeline.ops.vendor_standin import FakeUpstream, Served
from aiaudit.pipeline.settings import GatewaySettings, Settings
from tests.integration.gateway_support import jwks_of, write_files
from tests.integration.support import free_port_pair, read_topic, settings_env


def _worker_pids(parent: int) -> set[int]:
    """The gateway's processes: the supervisor's children running uvicorn's spawned workers."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == parent and b"multiprocessing" in cmd and b"resource_tracker" not in cmd:
            found.add(int(entry.name))
    return found


def _until(probe, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"waited {timeout_s:.0f}s for {what}")


def _ask(url: str, key: str, label: str) -> str:
    """One chat request on a connection of its own (so the processes share them); its request id."""
    r = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=20,
                   json={"model": "gpt-4o-mini", "user": label, "messages": [{"role": "user", "content": "hello"}]})
    assert r.status_code == 200, r.text[:300]
    return r.headers["x-request-id"]


def _events(settings: Settings) -> list[dict]:
    return [contract.decode(m.value(), max_bytes=settings.chain.max_event_bytes)
            for m in read_topic(settings, settings.kafka.requests_topic)]


def _metric_total(url: str, name: str) -> float:
    text = httpx.get(url, timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_workers_share_the_port_record_every_request_and_one_killed_is_replaced(settings: Settings, tmp_path: Path):
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with Served(FakeUpstream(jwks_of(signing_key, "itest-1")).app) as upstream:
        config_file, policy_file, keys = write_files(tmp_path, upstream.url, signing_key)
        port = free_port_pair()
        gw = settings.model_copy(update={"gateway": GatewaySettings(
            config_file=config_file, policy_file=policy_file, gateway_id=f"itest-{uuid.uuid4().hex[:6]}")})
        log = tmp_path / "gateway.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "aiaudit.pipeline.cli", "gateway", "serve", "--workers", "2",
                                     "--port", str(port), "--metrics-port", str(port + 1)],
                                    env=settings_env(gw), stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _until(lambda: _healthy(url, proc, log), "the gateway's processes")
            assert len(_until(lambda: len(_worker_pids(proc.pid)) == 2 and _worker_pids(proc.pid), "two processes")) == 2
            assert "(2 processes)" in log.read_text()
            with ThreadPoolExecutor(8) as pool:
                first = list(pool.map(lambda n: _ask(url, keys["alice@itest"], f"w-{n}"), range(60)))
            assert len(set(first)) == 60
            # The metrics of both processes, summed, on the one metrics port.
            assert _until(lambda: _metric_total(f"http://127.0.0.1:{port + 1}/metrics",
                                                "aiaudit_gateway_requests_total") == 60, "60 requests counted")
            _until(lambda: {e["event_id"] for e in _events(gw)} >= set(first), "the first 60 events on the topic")

            victim = min(_worker_pids(proc.pid))
            os.kill(victim, signal.SIGKILL)  # its events are on the topic already: nothing of them lost
            _until(lambda: victim not in (pids := _worker_pids(proc.pid)) and len(pids) == 2, "a replacement process")
            with ThreadPoolExecutor(8) as pool:
                after = list(pool.map(lambda n: _ask(url, keys["alice@itest"], f"w-after-{n}"), range(30)))
            events = _until(lambda: (ev := _events(gw)) and {e["event_id"] for e in ev} >= set(first + after) and ev,
                            "every request's event")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert proc.returncode == 0, log.read_text()[-2000:]
    # Each process numbers its own events from 0, without a gap: no two share an emitter id.
    numbered = defaultdict(list)
    for e in events:
        assert e["emitter_id"].startswith(f"{gw.gateway.gateway_id}-") or gw.gateway.gateway_id in e["emitter_id"]
        numbered[e["emitter_id"]].append(e["emitter_seq"])
    for emitter, seqs in numbered.items():
        assert sorted(seqs) == list(range(len(seqs))), emitter
    assert len(events) == 90


def test_a_port_already_listened_on_is_refused_once_with_a_clear_error(settings: Settings, tmp_path: Path):
    """A gateway (or anything) already on the port: the processes would join its SO_REUSEPORT group
    and take half its connections, so nothing starts."""
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    config_file, policy_file, _ = write_files(tmp_path, "http://127.0.0.1:9", signing_key)
    gw = settings.model_copy(update={"gateway": GatewaySettings(config_file=config_file, policy_file=policy_file)})
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as a running gateway's processes bind
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", "gateway", "serve", "--workers", "2",
                               "--port", str(port)], env=settings_env(gw), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def _healthy(url: str, proc: subprocess.Popen, log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the gateway exited {proc.returncode}:\n{log.read_text()[-3000:]}")
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_worker_count_out_of_bounds_is_one_line_before_anything_starts():
    for n in ("0", "65", "-3"):
        done = subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", "gateway", "serve", "--workers", n],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and f"--workers must be 1-64 (got {n})" in done.stderr, done.stderr[-1000:]
        assert "Traceback" not in done.stderr
