"""Helpers for integration tests: worker processes, an in-thread sink, emitting, reading back."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from aiaudit.infra.kafka.broker import LocalKafka
from aiaudit.infra.topics import ensure_topics
from aiaudit.pipeline.cli.worker import chain_notary
from aiaudit.pipeline.contract.analyst_keys import ANALYSTS_DIR, load_analyst_keys, new_analyst_key
from aiaudit.pipeline.contract.analyst_keys import key_set_file as analyst_key_set_file
from aiaudit.pipeline.contract.emitter_keys import (
    EMITTERS_DIR,
    KEY_SET_FILE,
    key_set_file,
    load_emitter_keys,
    new_emitter_key,
)
from aiaudit.pipeline.emit.producer import Delivery, Emitter
from aiaudit.pipeline.emit.synthetic import SyntheticEvents
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.keys import (
    KeyRing,
    active_key_file,
    checkpoint_key_file,
    generate_key,
    load_signer,
    read_checkpoint_public_key,
    read_jwks,
)
from aiaudit.pipeline.ops.evidence import EvidenceChains
from aiaudit.pipeline.ops.progress import chain_lag, evidence_lag, wait_until_drained
from aiaudit.pipeline.ops.supervisor import start_worker
from aiaudit.pipeline.settings import (
    ChainSettings,
    ClickHouseSettings,
    EmitterSettings,
    KafkaSettings,
    LocalSettings,
    Settings,
    SigningSettings,
)
from aiaudit.pipeline.sink.worker import SinkWorker
from aiaudit.pipeline.store.filters import Filters
from aiaudit.pipeline.verify.run import VerifyReport
from aiaudit.pipeline.verify.sources import verify_store as verify_whole
from aiaudit.pipeline.verify.trust import Trust

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=timezone.utc)


ANALYST = "soc-analyst-1"


def analyst_of(keys_dir: Path) -> Path:
    """soc-analyst-1's key, registered in the keys folder's analyst key set: it signs the tests' status changes."""
    return new_analyst_key(keys_dir / ANALYSTS_DIR, ANALYST, keys_dir / ANALYSTS_DIR / "jwks.json")[0]


def edge_emitter_key(keys_dir: Path) -> Path:
    """The tests' emitter key, registered as emitter `edge` (their emitter ids are edge-...)."""
    path, _, _ = new_emitter_key(keys_dir / EMITTERS_DIR, "edge", keys_dir / EMITTERS_DIR / KEY_SET_FILE)
    return path


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build the same Settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIAUDIT_")}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                put(f"{prefix}__{k.upper()}", v)
        elif isinstance(value, list):  # pydantic-settings reads a list as JSON
            env[prefix] = json.dumps([str(v) for v in value])
        elif value is not None:
            env[prefix] = str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)

    for section in ("kafka", "chain", "signing", "clickhouse", "sink", "score", "deliver", "emitter", "gateway", "console",
                    "litellm", "otlp", "local"):
        model = getattr(settings, section)
        for name in type(model).model_fields:
            value = getattr(model, name)
            if name != "client_config":
                put(f"AIAUDIT_{section.upper()}__{name.upper()}", value)
    return env


class ChainWorkers:
    """Chain workers as real child processes, so they can be killed with SIGKILL."""

    def __init__(self, settings: Settings, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.env = env or {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, instance_id: str, role: str = "chain", extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        proc = start_worker(role, instance_id=instance_id if role in ("chain", "evidence") else None,
                            log_file=self.log_dir / f"{role}-{instance_id}.log",
                            env={**settings_env(self.settings), **self.env}, extra=extra)
        self.procs[instance_id] = proc
        return proc

    def kill9(self, instance_id: str) -> None:
        proc = self.procs[instance_id]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def __enter__(self) -> "ChainWorkers":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None and issubclass(exc_type, AssertionError):
            print(self.logs())
        self.stop_all()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.log_dir.glob("*-*.log")))


def emit_synthetic(settings: Settings, n: int, *, emitter_id: str, seed: int = 1) -> tuple[Emitter, list[dict[str, Any]]]:
    """Emit n events; returns the emitter (flushed) and the events as sent (with their seqs)."""
    delivered: list[Delivery] = []
    emitter = Emitter(settings, emitter_id=emitter_id, on_delivery=delivered.append)
    gen = SyntheticEvents(seed, T0, emitter_id, step=timedelta(milliseconds=50))
    sent = []
    for _ in range(n):
        ev = gen.next_event()
        seq = emitter.emit(ev)
        sent.append({**ev, "emitter_id": emitter_id, "emitter_seq": seq})
    emitter.flush()
    assert emitter.delivered == n and not emitter.failures
    return emitter, sent


# `make soak` (AIAUDIT_SOAK=1): the repeated kill -9 tests at full length. `make test` runs each
# fault the same way, with fewer kills and fewer events.
SOAK = os.environ.get("AIAUDIT_SOAK") == "1"


def wait_chained(settings: Settings, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while lag := chain_lag(settings):
        if time.monotonic() > deadline:
            raise AssertionError(f"input not chained within {timeout_s}s: {lag} message(s) left")
        time.sleep(0.5)


def wait_evidence_chained(settings: Settings, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while lag := evidence_lag(settings):
        if time.monotonic() > deadline:
            raise AssertionError(f"evidence not chained within {timeout_s}s: {lag} partition(s) behind")
        time.sleep(0.5)


def evidence_chains(settings: Settings) -> EvidenceChains:
    """The chain workers of every evidence kind (findings, status changes, dead letters ...), in
    threads of the test process, signing with the test's keys: what `aiaudit worker evidence` runs."""
    sg = settings.signing
    return EvidenceChains(settings, load_signer(active_key_file(sg.keys_dir, sg.key_file)), chain_notary(settings))


def sink_until_drained(settings: Settings, client: Any, timeout_s: float = 180, *,
                       evidence: bool = True) -> SinkWorker:
    """Run the real sink worker in a thread until everything committed is in ClickHouse; the
    evidence kinds' chain workers run meanwhile (the tables people read are filled from their
    chains), until every message of their input topics is chained (with their heartbeats at the
    default pace: a test's fast heartbeats are its request chains', and would keep the sink behind).
    evidence=False when the test ran its own `aiaudit worker evidence`."""
    if not evidence:
        return _sink_until_drained(settings, client, timeout_s)
    paced = settings.updated(chain={"heartbeat_interval_s": max(settings.chain.heartbeat_interval_s, 30.0)})
    chains = evidence_chains(paced).start()
    try:
        wait_evidence_chained(settings, timeout_s=timeout_s)
        if chains.chained():  # what they chained gets its signed checkpoint one interval later
            time.sleep(settings.chain.checkpoint_interval_s + 1.0)
        return _sink_until_drained(settings, client, timeout_s)
    finally:
        chains.close()
        if chains.failed:
            raise chains.failed[0]


def _sink_until_drained(settings: Settings, client: Any, timeout_s: float) -> SinkWorker:
    sink = SinkWorker(settings, client)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sink.run(stop, progress_every_s=3600)
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    lag = wait_until_drained(settings, timeout_s=timeout_s, poll_s=0.5)
    stop.set()
    t.join(60)
    if errors:
        raise errors[0]
    assert lag.done, f"sink did not drain: {lag}"
    return sink


def verify_store(settings: Settings, client: Any) -> VerifyReport:
    """Whole-store verification as `aiaudit verify` does it: records, links, columns, emitters and
    the signed checkpoints (under the test's own checkpoint key)."""
    return verify_whole_with(settings, client)


def verify_whole_with(settings: Settings, client: Any, *, witness: tuple[str, Any] | None = None,
                      emitters: bool = True) -> VerifyReport:
    keyring = KeyRing.from_jwks(read_jwks(settings.signing.keys_dir))
    analysts = analyst_key_set_file(settings)
    if analysts.exists():  # every chained status change signed by the analyst it names
        keyring = keyring.with_analysts(load_analyst_keys(analysts))
    if emitters:  # every event signed by its emitter
        keyring = keyring.with_emitters(load_emitter_keys(key_set_file(settings), required=True))
    pub = read_checkpoint_public_key(checkpoint_key_file(settings.signing.keys_dir, None))
    witnesses = ((witness[1], witness[0]),) if witness else ()
    return verify_whole(client, settings, Trust(keyring, (pub,), witnesses), Filters())


def read_topic(settings: Settings, topic: str, *, read_committed: bool = True, partitions: int | None = None) -> list[Any]:
    """Every message of a topic (all partitions), up to the end at the time of the call."""
    consumer = Consumer(kafka_config.client(settings, **{
        "group.id": "itest-reader", "enable.auto.commit": False, "enable.partition.eof": True,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "fetch.message.max.bytes": 8 * 1024 * 1024,
    }))
    parts = partitions or settings.kafka.partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in range(parts)])
    out, eof = [], set()
    deadline = time.monotonic() + 60
    while len(eof) < parts and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
                continue
            raise AssertionError(str(msg.error()))
        out.append(msg)
    consumer.close()
    return out


def free_port_pair(low: int = 29600, high: int = 32700) -> int:
    """A port p with p and p+1 free now, below the ephemeral range (32768-60999).

    A broker restarted on a fixed port in the ephemeral range can find it taken by some client's
    outgoing socket (CI saw it: "failed to bind to 127.0.0.1:39292"); below the range only a
    listener can hold it, and this scan skips the ones that do.
    """
    for port in range(low + os.getpid() % 200 * 2, high, 2):
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no free pair of ports in {low}-{high}")


@contextlib.contextmanager
def own_broker(tmp_path: Path, chdb_dir: Path, *, name: str, port: int | None = None) -> Iterator[tuple[LocalKafka, Settings]]:
    """A broker of the test's own (2 partitions, small heap), for tests that kill it.

    It keeps its port across restarts; by default a free pair below the ephemeral range.
    """
    port = port or free_port_pair()
    keys = tmp_path / "keys"
    generate_key(keys)
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", partitions=2, session_timeout_ms=6000),
        chain=ChainSettings(org="itest", env=name), signing=SigningSettings(keys_dir=keys, analyst_key_file=analyst_of(keys)),
        emitter=EmitterSettings(key_file=edge_emitter_key(keys)),
        clickhouse=ClickHouseSettings(dsn=SecretStr(f"chdb://{chdb_dir}"), database=f"t_{name}"),
        local=LocalSettings(state_dir=tmp_path / "state", kafka_port=port, controller_port=port + 1, kafka_heap="512m"),
    )
    kafka = LocalKafka(settings)
    kafka.up()
    try:
        ensure_topics(settings)
        yield kafka, settings
    finally:
        kafka.down()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, read over HTTP and parsed by Prometheus's own parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metric_value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def run_walkthrough(tmp_path: Path, doc: str, ports: dict[str, str], env: dict[str, str] | None = None,
                    *, drop_env: tuple[str, ...] = ("AIAUDIT_",)) -> subprocess.CompletedProcess[str]:
    """A doc's "Five minutes" block (docs/<doc>), run by bash as written, with the ports (as written
    -> this test's), the state folder, the broker and HOME (where the keys go) of this test's own;
    its `make` line is what `make test` has already done."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / doc).read_text()
    block = re.search(r"## Five minutes\n.*?```sh\n(.*?)```", text, re.DOTALL)
    assert block, f"docs/{doc} has no Five minutes block"
    script = block.group(1)
    for written, ours in ports.items():
        script = script.replace(written, ours)
    lines = [line for line in script.splitlines(keepends=True) if not line.startswith("make ")]
    assert len(lines) == len(script.splitlines()) - 1
    port = free_port_pair()
    home = tmp_path / "home"
    home.mkdir()
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(drop_env)}
    run_env.update({"HOME": str(home), "AIAUDIT_LOCAL__STATE_DIR": str(tmp_path / "state"),
                    "AIAUDIT_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "AIAUDIT_LOCAL__KAFKA_PORT": str(port),
                    "AIAUDIT_LOCAL__CONTROLLER_PORT": str(port + 1), **(env or {})})
    return subprocess.run(["bash", "-c", "set -e\ntrap 'kill $(jobs -p) 2>/dev/null; aiaudit infra down' EXIT\n"
                           + "".join(lines)], cwd=root, env=run_env, capture_output=True, text=True, timeout=600)
