"""Throughput and latency of the pipeline on this machine (prints figures; asserts nothing).

    python bench/pipeline_bench.py [--events 60000] [--chain-workers 1]

1. Ceiling: raw Ed25519 signing rate, and record building (JCS + sign + hash) on one core.
2. End to end, sustained: chain and sink workers running while one emitter sends as fast as
   it can; events/s from the first emit until the last event is queryable, and p50/p99
   emit-to-queryable latency (ClickHouse insert time minus the event's emit time).
3. Per stage, on a backlog: emit alone; then chain alone; then sink alone.

Uses its own broker (port 19292) and state folder (.aiaudit/bench), removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from aiaudit.infra.kafka.broker import LocalKafka  # noqa: E402
from aiaudit.infra.topics import ensure_topics  # noqa: E402
from aiaudit.pipeline import contract, store  # noqa: E402
from aiaudit.pipeline.chain.checkpoint import TreeState, checkpoint_note, extend  # noqa: E402
from aiaudit.pipeline.chain.merkle import CompactRange  # noqa: E402
from aiaudit.pipeline.chain.note import SIG_ED25519, NoteSigner  # noqa: E402
from aiaudit.pipeline.chain.record import ChainHead, ChainId, Source, build_record  # noqa: E402
from aiaudit.pipeline.contract import to_json_event  # noqa: E402
from aiaudit.pipeline.contract.emitter_keys import EMITTERS_DIR, KEY_SET_FILE, emitter_keys_from, new_emitter_key  # noqa: E402
from aiaudit.pipeline.contract.signature import signature_member  # noqa: E402
from aiaudit.pipeline.emit.producer import Emitter  # noqa: E402
from aiaudit.pipeline.emit.synthetic import SyntheticEvents  # noqa: E402
from aiaudit.pipeline.kafka.io import committed_offsets  # noqa: E402
from aiaudit.pipeline.keys import Ed25519Signer, generate_key  # noqa: E402
from aiaudit.pipeline.ops.progress import pipeline_lag  # noqa: E402
from aiaudit.pipeline.ops.supervisor import start_worker  # noqa: E402
from aiaudit.pipeline.settings import (  # noqa: E402
    ChainSettings,
    ClickHouseSettings,
    EmitterSettings,
    KafkaSettings,
    LocalSettings,
    Settings,
    SigningSettings,
)
from tests.integration.support import settings_env  # noqa: E402

PORT = 19292


def line(name: str, value: str) -> None:
    print(f"  {name:<44} {value}", flush=True)


def ceiling(n: int = 20_000) -> None:
    print("1. ceiling (one core)")
    signer = Ed25519Signer.generate()
    msg = os.urandom(1500)
    t = time.perf_counter()
    for _ in range(n):
        signer.sign(msg)
    line("raw Ed25519 signing (1.5 KB message)", f"{n / (time.perf_counter() - t):,.0f} signatures/s")
    gen = SyntheticEvents(1, datetime.now(timezone.utc), "bench")
    events = [to_json_event(gen.next_event()) for _ in range(n)]
    head = ChainHead.genesis(ChainId("bench/x/t/p0/g1"))
    records = []
    t = time.perf_counter()
    for i, ev in enumerate(events):
        rec = build_record(head, signer, ev["occurred_at"], Source("t", 0, i), ev)
        records.append(rec)
        head = rec.next_head(i)
    build_s = time.perf_counter() - t
    line("record building (JCS + Ed25519 + SHA-256)", f"{n / build_s:,.0f} records/s")
    # What checkpoints add to the chain step, per 1,000-record batch: the tree, its state message,
    # and one signed checkpoint per batch (the worker signs at most every checkpoint interval).
    notary = NoteSigner.local("bench/x/t/p0/g1", SIG_ED25519, Ed25519PrivateKey.generate())
    tree = CompactRange()
    t = time.perf_counter()
    for i in range(0, n, 1000):
        tree, tiles = extend(tree, [r.leaf_hash for r in records[i:i + 1000]])
        TreeState("bench/x/t/p0/g1", tree, tuple(tiles), checkpoint_note("bench/x/t/p0/g1", tree, notary),
                  "2026-11-29T00:00:00.000000Z").to_wire()
    cp_s = time.perf_counter() - t
    line("checkpoint work (tree, state, signed note)", f"{cp_s / n * 1e6:.2f} us/record = "
         f"{100 * cp_s / build_s:.1f}% of record building")
    # Emitter authentication, per event on one core: what the SDK adds to encoding (JSON form,
    # JCS, Ed25519 sign) and what the chain worker adds to decoding (JCS, Ed25519 verify).
    emitter = Ed25519Signer.generate()
    ring = emitter_keys_from({"keys": [{**emitter.jwk(), "emitter": "bench"}]}, "bench")
    datums = [{**gen.next_event(), "emitter_id": "bench-1", "emitter_seq": i} for i in range(n // 4)]
    t = time.perf_counter()
    for d in datums:
        contract.encode({**d, "emitter_signature": None}, max_bytes=1 << 20)
    plain_s = time.perf_counter() - t
    t = time.perf_counter()
    framed = [contract.encode_signed(d, lambda e: signature_member(emitter, e), max_bytes=1 << 20)[0] for d in datums]
    signed_s = time.perf_counter() - t
    decoded = [contract.decode(f, max_bytes=1 << 20) for f in framed]
    t = time.perf_counter()
    for ev in decoded:
        ring.problem(ev)
    check_s = time.perf_counter() - t
    raw_pub = emitter.private_key.public_key()
    sig = emitter.sign(msg)
    t = time.perf_counter()
    for _ in range(len(datums)):
        raw_pub.verify(sig, msg)
    verify_s = time.perf_counter() - t
    k = len(datums)
    line("SDK encode, unsigned -> signed", f"{plain_s / k * 1e6:.1f} -> {signed_s / k * 1e6:.1f} us/event")
    line("chain worker's emitter check (JCS + Ed25519 verify)", f"{check_s / k * 1e6:.1f} us/event = "
         f"{check_s / verify_s:.2f}x raw Ed25519 verify (OpenSSL, {verify_s / k * 1e6:.1f} us), "
         f"{100 * check_s / (build_s * k / n):.0f}% of record building")


COMPRESSION = "none"


def make_settings(base: Path, chdb: Path, keys: Path, *, signed: bool = True) -> Settings:
    """Signed: the SDK signs with the `bench` emitter key and the chain worker requires it (the
    defaults); unsigned: neither, to measure what emitter authentication costs."""
    uid = uuid.uuid4().hex[:8]
    key_files = sorted((keys / EMITTERS_DIR).glob("bench.*.key"))
    return Settings(
        emitter=EmitterSettings(key_file=key_files[0] if signed else None, sign=signed),
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{PORT}", requests_topic=f"req-{uid}", chain_topic=f"chain-{uid}",
                            dead_letter_topic=f"dlq-{uid}", checkpoints_topic=f"cp-{uid}", partitions=4, chain_group=f"chain-{uid}", sink_group=f"sink-{uid}",
                            compression=COMPRESSION),
        chain=ChainSettings(org="bench", env=uid, require_emitter_signature=signed),
        signing=SigningSettings(keys_dir=keys),
        clickhouse=ClickHouseSettings(dsn=SecretStr(f"chdb://{chdb}"), database=f"b_{uid}"),
        local=LocalSettings(state_dir=base, kafka_port=PORT, controller_port=PORT + 1),
    )


STARTED: list[subprocess.Popen[bytes]] = []


def start(role: str, settings: Settings, log_dir: Path, n: int = 0) -> subprocess.Popen[bytes]:
    STARTED.append(start_worker(role, instance_id=f"bench-{role}-{n}", log_file=log_dir / f"{role}-{n}.log",
                                env=settings_env(settings)))
    return STARTED[-1]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(60)


def emit(settings: Settings, n: int, *, now_stamped: bool, rate: float | None = None) -> float:
    """Emit n events through the SDK, as fast as it goes or at `rate` per second; returns
    seconds until all are acknowledged. Events are generated beforehand so the figure is
    the SDK's, not the load generator's."""
    emitter = Emitter(settings, emitter_id=f"bench-{uuid.uuid4().hex[:6]}")
    gen = SyntheticEvents(3, datetime.now(timezone.utc), emitter.emitter_id)
    events = [gen.next_event() for _ in range(n)]
    t = time.perf_counter()
    for i, ev in enumerate(events):
        if rate is not None:
            ahead = t + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        if now_stamped:
            ev["occurred_at"] = datetime.now(timezone.utc)
        emitter.emit(ev)
    emitter.flush()
    return time.perf_counter() - t


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency(settings: Settings) -> tuple[int, float, float]:
    """(rows, p50 ms, p99 ms) of insert time minus emit time, each record once."""
    client = store.connect(settings)
    (rows, p50, p99), = client.query(
        f"SELECT count(), quantile(0.5)(lat), quantile(0.99)(lat) FROM (SELECT dateDiff('millisecond', ts, ingested_at) "
        f"AS lat FROM {settings.clickhouse.database}.evidence LIMIT 1 BY origin, seq)").result_rows
    client.close()
    return rows, p50, p99


def wait(cond: Callable[[], bool], timeout_s: float = 900, poll_s: float = 0.2) -> float:
    t = time.perf_counter()
    while not cond():
        if time.perf_counter() - t > timeout_s:
            raise SystemExit("timed out")
        time.sleep(poll_s)
    return time.perf_counter() - t


def chained(settings: Settings) -> int:
    k = settings.kafka
    return sum(max(0, o) for o in committed_offsets(settings, k.chain_group, k.requests_topic, k.partitions).values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--chain-workers", type=int, default=2)
    ap.add_argument("--compression", default="none", help="producer compression: none, lz4, zstd ...")
    args = ap.parse_args()
    global COMPRESSION
    COMPRESSION = args.compression
    n = args.events
    print(f"aiaudit pipeline benchmark: {n} events, {args.chain_workers} chain worker(s), "
          f"compression {args.compression}, {os.cpu_count()} cores")
    ceiling()

    base = Path(".aiaudit/bench").resolve()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    keys = base / "keys"
    generate_key(keys)
    new_emitter_key(keys / EMITTERS_DIR, "bench", keys / EMITTERS_DIR / KEY_SET_FILE)
    kafka = LocalKafka(make_settings(base, base / "chdb", keys))
    kafka.up()
    try:
        # 2a. latency at a steady rate below capacity
        print("2. end to end (chain + sink running while one emitter sends)")
        s = make_settings(base, base / "chdb", keys)
        ensure_topics(s)
        workers = [start("chain", s, base, 20 + i) for i in range(args.chain_workers)] + [start("sink", s, base, 20)]
        wait(lambda: pipeline_lag(s).done, 60)
        time.sleep(8)
        steady = min(n, 10_000)
        emit(s, steady, now_stamped=True, rate=1000.0)
        wait(lambda: pipeline_lag(s).done, poll_s=2.0)
        stop(workers)
        rows, p50, p99 = latency(s)
        line("emit -> queryable latency at 1,000 events/s", f"p50 {p50:,.0f} ms, p99 {p99:,.0f} ms ({rows:,} events)")

        # 2b. sustained: the emitter as fast as it goes
        s = make_settings(base, base / "chdb", keys)
        ensure_topics(s)
        workers = [start("chain", s, base, i) for i in range(args.chain_workers)] + [start("sink", s, base)]
        wait(lambda: pipeline_lag(s).done, 60)
        time.sleep(8)  # let the workers join their groups and open their chains
        pids = {"broker": kafka.pid() or 0, **{f"chain worker {i}": w.pid for i, w in enumerate(workers[:-1])},
                "sink worker": workers[-1].pid}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own_before = time.process_time()
        t_first = datetime.now(timezone.utc)
        emit_s = emit(s, n, now_stamped=True)
        own_cpu = time.process_time() - own_before
        # Polling the broker costs CPU the pipeline needs; the figures come from ClickHouse insert times.
        wait(lambda: pipeline_lag(s).done, poll_s=3.0)
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        stop(workers)
        client = store.connect(s)
        db = s.clickhouse.database
        (rows, p50, p99, last), = client.query(
            f"SELECT count(), quantile(0.5)(lat), quantile(0.99)(lat), max(ingested_at) FROM "
            f"(SELECT dateDiff('millisecond', ts, ingested_at) AS lat, ingested_at FROM {db}.evidence LIMIT 1 BY origin, seq)"
        ).result_rows
        client.close()
        last = last if last.tzinfo else last.replace(tzinfo=timezone.utc)
        line("events emitted (acknowledged)", f"{n:,} in {emit_s:.1f}s ({n / emit_s:,.0f}/s while the workers ran)")
        line("end-to-end throughput (first emit -> last queryable)",
             f"{n / (last - t_first).total_seconds():,.0f} events/s ({rows:,} rows queryable)")
        line("emit -> queryable latency at saturation", f"p50 {p50:,.0f} ms, p99 {p99:,.0f} ms")
        line("CPU per event (emitter incl. event stamping)", f"{own_cpu / n * 1e6:,.0f} us")
        for name, seconds in cpu.items():
            line(f"CPU per event ({name})", f"{seconds / n * 1e6:,.0f} us")

        # 3. per stage, on a backlog; emit and chain also without emitter signatures (same run)
        print("3. per stage, each on a backlog")
        rates = {}
        for signed in (False, True):
            s = make_settings(base, base / "chdb", keys, signed=signed)
            ensure_topics(s)
            emit_s = emit(s, n, now_stamped=False)
            label = "signed, the default" if signed else "unsigned"
            line(f"emit (SDK: validate + Avro + produce, acks=all; {label})", f"{n / emit_s:,.0f} events/s")
            workers = [start("chain", s, base, 10 + i + 10 * signed) for i in range(args.chain_workers)]
            wait(lambda: chained(s) > 0, 120)
            first = chained(s)
            chain_s = wait(lambda: chained(s) >= n)
            stop(workers)
            rates[signed] = (n - first) / chain_s
            line(f"chain (decode + validate + sign + chain, EOS txns; {label})", f"{rates[signed]:,.0f} events/s")
        line("chain with emitter signatures checked / without", f"{rates[True] / rates[False]:.2f}x")
        sink = [start("sink", s, base, 10)]
        wait(lambda: pipeline_lag(s).done)
        stop(sink)
        client = store.connect(s)
        (rows, first_at, last_at), = client.query(
            f"SELECT count(), min(ingested_at), max(ingested_at) FROM {s.clickhouse.database}.evidence").result_rows
        client.close()
        line("sink (row building + chDB batched inserts)", f"{rows / max((last_at - first_at).total_seconds(), 1e-3):,.0f} rows/s "
             "(first to last insert)")
    finally:
        for p in STARTED:
            if p.poll() is None:
                p.kill()
        kafka.down()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
