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
from aiaudit.pipeline.ops.progress import chain_lag, sink_lag  # noqa: E402
from aiaudit.pipeline.ops.supervisor import start_worker  # noqa: E402
from aiaudit.pipeline.settings import (  # noqa: E402
    ChainSettings,
    ClickHouseSettings,
    EmitterSettings,
    KafkaSettings,
    LocalSettings,
    Settings,
    SigningSettings,
    SinkSettings,
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


def floor(n: int = 4000) -> tuple[float, float]:
    """The cryptographic floor per event on this machine: the fastest Ed25519 sign and verify available
    here (OpenSSL through `cryptography`, libsodium through PyNaCl), in microseconds, measured now."""
    from nacl import bindings as sodium

    msg = os.urandom(1200)  # about an event's JCS form
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    sig = key.sign(msg)
    seed = os.urandom(32)
    spk, ssk = sodium.crypto_sign_seed_keypair(seed)
    signed = sodium.crypto_sign(msg, ssk)

    def per_op(fn: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter() - t) / n * 1e6)
        return best

    signs = {"OpenSSL": per_op(lambda: key.sign(msg)), "libsodium": per_op(lambda: sodium.crypto_sign(msg, ssk))}
    verifies = {"OpenSSL": per_op(lambda: pub.verify(sig, msg)),
                "libsodium": per_op(lambda: sodium.crypto_sign_open(signed, spk))}
    for what, table in (("sign", signs), ("verify", verifies)):
        line(f"Ed25519 {what} (1.2 KB)", ", ".join(f"{k} {v:.1f} us" for k, v in table.items()))
    return min(signs.values()), min(verifies.values())


COMPRESSION = "none"
PACE_S = 0.005  # the steady state's emitter sleeps only once it is this far ahead of its schedule
TUNING: dict[str, float] = {}  # --emitter-linger-ms, --chain-poll-s, --sink-flush-s: the defaults unless given


def make_settings(base: Path, chdb: Path, keys: Path, *, signed: bool = True) -> Settings:
    """Signed: the SDK signs with the `bench` emitter key and the chain worker requires it (the
    defaults); unsigned: neither, to measure what emitter authentication costs."""
    uid = uuid.uuid4().hex[:8]
    key_files = sorted((keys / EMITTERS_DIR).glob("bench.*.key"))
    return Settings(
        emitter=EmitterSettings(key_file=key_files[0] if signed else None, sign=signed,
                                linger_ms=int(TUNING.get("emitter_linger_ms", EmitterSettings().linger_ms))),
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{PORT}", requests_topic=f"req-{uid}", chain_topic=f"chain-{uid}",
                            dead_letter_topic=f"dlq-{uid}", checkpoints_topic=f"cp-{uid}", partitions=4, chain_group=f"chain-{uid}", sink_group=f"sink-{uid}",
                            compression=COMPRESSION),
        chain=ChainSettings(org="bench", env=uid, require_emitter_signature=signed,
                            poll_timeout_s=TUNING.get("chain_poll_s", ChainSettings().poll_timeout_s)),
        sink=SinkSettings(flush_interval_s=TUNING.get("sink_flush_s", SinkSettings().flush_interval_s)),
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


def stat_cpu(stat: str) -> float:
    """User + system CPU seconds from a /proc stat line (a process's or a thread's)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc."""
    return stat_cpu(Path(f"/proc/{pid}/stat").read_text())


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of a running process by thread name (digits dropped: a pool's
    threads add up), from /proc."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        name = "".join("N" if c.isdigit() else c for c in stat[stat.index("(") + 1:stat.rindex(")")])
        out[name] = out.get(name, 0.0) + stat_cpu(stat)
    return out


# The broker JVM's threads, in groups, by a part of their names (as the JVM gives them to the kernel: 15
# characters, digits here as N): C1/C2 compiler threads, Kafka's network and request handler threads, G1's.
BROKER_THREADS = (("JIT compilation", ("CompilerThre",)), ("requests (network, handlers)", ("data-plane-kafk",)),
                  ("garbage collection", ("GC Thread", "GN Main", "GN Conc", "GN Refine", "GN Service")))


def broker_shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds between two thread_cpu readings of the broker, by BROKER_THREADS group and the rest."""
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    shares = {group: sum(v for name, v in used.items() if any(part in name for part in parts))
              for group, parts in BROKER_THREADS}
    shares["the rest (coordinators, raft, timers)"] = sum(used.values()) - sum(shares.values())
    return shares


def kafka_client_cpu(before: dict[str, float], after: dict[str, float]) -> float:
    """CPU seconds between two thread_cpu readings of a Python process spent in librdkafka's own
    threads (named rdk:main, rdk:broker..., rdk:bg...): the Kafka client's work outside the
    interpreter (the produce and consume calls themselves run on the calling thread)."""
    return sum(after[name] - before.get(name, 0.0) for name in after if name.startswith("rdk:"))


def latency(settings: Settings) -> tuple[int, float, float]:
    """(rows, p50 ms, p99 ms) of insert time minus emit time, each record once."""
    client = store.connect(settings)
    (rows, p50, p99), = client.query(
        f"SELECT count(), quantile(0.5)(lat), quantile(0.99)(lat) FROM (SELECT dateDiff('millisecond', ts, ingested_at) "
        f"AS lat FROM {settings.clickhouse.database}.evidence LIMIT 1 BY origin, seq)").result_rows
    client.close()
    return rows, p50, p99


def drained(settings: Settings) -> bool:
    """Every request chained and every chain record in ClickHouse. The evidence kinds' chains are not
    run here (the key set the chain worker records waits for one; `pipeline_lag` would never be done)."""
    return chain_lag(settings) == 0 and sink_lag(settings) == 0


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


def profile(what: dict[str, int], out: Path, seconds: float) -> list[subprocess.Popen[bytes]]:
    """Sample every process for `seconds`: py-spy (collapsed stacks, native frames) for the Python
    ones, the JVM's own flight recorder for the broker."""
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, pid in what.items():
        slug = name.replace(" ", "-")
        if name == "broker":
            subprocess.run(["jcmd", str(pid), "JFR.start", f"duration={int(seconds)}s", "settings=profile",
                            f"filename={out / 'broker.jfr'}"], check=True, capture_output=True)
        else:
            procs.append(subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
                                           "--duration", str(int(seconds)), "--rate", "200", "--native",
                                           "--format", "raw", "--output", str(out / f"{slug}.txt")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def latency_at_1000(base: Path, keys: Path, args: argparse.Namespace) -> None:
    """Emit-to-queryable latency at a steady 1,000 events/s, below capacity."""
    s = make_settings(base, base / "chdb", keys)
    ensure_topics(s)
    workers = [start("chain", s, base, 20 + i) for i in range(args.chain_workers)] + [start("sink", s, base, 20)]
    wait(lambda: drained(s), 60)
    time.sleep(8)
    steady = min(args.events, 10_000)
    emit(s, steady, now_stamped=True, rate=1000.0)
    wait(lambda: drained(s), poll_s=2.0)
    stop(workers)
    rows, p50, p99 = latency(s)
    line("emit -> queryable latency at 1,000 events/s", f"p50 {p50:,.0f} ms, p99 {p99:,.0f} ms ({rows:,} events)")


def steady_state(base: Path, keys: Path, kafka: LocalKafka, args: argparse.Namespace) -> None:
    """One emitter at a fixed rate (events built inside the window) while the chain and sink workers
    run; every process's CPU over a window of at least 60 s after a warm-up, divided by the events
    emitted in it, against the cryptographic floor measured in the same run."""
    print(f"2b. steady state at {args.rate:,.0f} events/s ({args.warmup:.0f} s warm-up, {args.seconds:.0f} s measured)")
    sign_us, verify_us = floor()
    floor_us = 2 * sign_us + verify_us  # the emitter signs; the chain worker verifies and signs
    line("cryptographic floor per event", f"{floor_us:.1f} us (2 signs + 1 verify, the fastest here)")
    line("features on", "emitter signatures (signed, checked), checkpoints every "
         f"{ChainSettings().checkpoint_interval_s:.0f} s; off: scoring, further chains, OCSF records, "
         "classification (events arrive classified)")
    s = make_settings(base, base / "chdb", keys)
    ensure_topics(s)
    workers = [start("chain", s, base, 30 + i) for i in range(args.chain_workers)] + [start("sink", s, base, 30)]
    wait(lambda: drained(s), 60)
    time.sleep(8)  # the workers join their groups and open their chains
    pids = {"broker": kafka.pid() or 0, **{f"chain worker {i}": w.pid for i, w in enumerate(workers[:-1])},
            "sink worker (chDB incl.)": workers[-1].pid}
    # The Python processes, whose librdkafka threads are shown apart: the workers, and this one (the emitter).
    python_pids = {**{name: pid for name, pid in pids.items() if name != "broker"}, "emitter (SDK, events built)": os.getpid()}
    emitter = Emitter(s, emitter_id=f"bench-{uuid.uuid4().hex[:6]}")
    gen = SyntheticEvents(3, datetime.now(timezone.utc), emitter.emitter_id)
    rate, warm_n = args.rate, int(args.rate * args.warmup)
    total = warm_n + int(args.rate * args.seconds)
    before: dict[str, float] = {}
    own_before, started_at, window_start = 0.0, 0.0, datetime.now(timezone.utc)
    spies: list[subprocess.Popen[bytes]] = []
    t = time.perf_counter()
    late = 0.0
    for i in range(total):
        if i == warm_n:  # the measured window opens
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            broker_before = thread_cpu(pids["broker"])
            clients_before = {name: thread_cpu(pid) for name, pid in python_pids.items()}
            own_before, started_at, window_start = time.process_time(), time.perf_counter(), datetime.now(timezone.utc)
            if args.profile:
                spies = profile({**pids, "emitter": os.getpid()}, Path(args.profile), args.seconds)
        # On schedule within 5 ms: a sleep per event would cost the load generator more CPU than
        # the SDK (a wake-up per event; measured: ~115 us an event at 2,000/s).
        ahead = t + i / rate - time.perf_counter()
        if ahead > PACE_S:
            time.sleep(ahead)
        elif ahead < 0:
            late = max(late, -ahead)
        ev = gen.next_event()
        ev["occurred_at"] = datetime.now(timezone.utc)
        emitter.emit(ev)
    emitter.flush()  # part of the window: the last events' delivery
    window_s = time.perf_counter() - started_at
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    broker = broker_shares(broker_before, thread_cpu(pids["broker"]))
    clients = {name: kafka_client_cpu(was, thread_cpu(python_pids[name])) for name, was in clients_before.items()}
    cpu["emitter (SDK, events built)"] = time.process_time() - own_before
    window_end = datetime.now(timezone.utc)
    n = total - warm_n
    drain_s = wait(lambda: drained(s), poll_s=1.0)
    for spy in spies:
        spy.wait(60)
    # What the pipeline costs with nothing to do (polls, heartbeats, the broker's own work), measured
    # once the broker is warm: a share of every figure above, larger the lower the rate.
    time.sleep(5)
    idle = {name: cpu_seconds(pid) for name, pid in pids.items()}
    idle_broker = thread_cpu(pids["broker"])
    time.sleep(args.idle)
    idle = {name: (cpu_seconds(pid) - idle[name]) / args.idle for name, pid in pids.items()}
    idle_jit = broker_shares(idle_broker, thread_cpu(pids["broker"]))["JIT compilation"] / args.idle
    stop(workers)
    client = store.connect(s)
    (rows, p50, p99), = client.query(
        f"SELECT count(), quantile(0.5)(lat), quantile(0.99)(lat) FROM (SELECT dateDiff('millisecond', ts, ingested_at) "
        f"AS lat FROM {s.clickhouse.database}.evidence WHERE ts >= %(a)s AND ts < %(b)s LIMIT 1 BY origin, seq)",
        parameters={"a": window_start, "b": window_end}).result_rows
    client.close()
    line("events in the window", f"{n:,} in {window_s:.1f} s ({n / window_s:,.0f}/s; the emitter at most "
         f"{late * 1e3:,.0f} ms behind its schedule); drained {drain_s:.1f} s after")
    line("emit -> queryable latency (window's events)", f"p50 {p50:,.0f} ms, p99 {p99:,.0f} ms ({rows:,} rows)")
    for name, seconds in cpu.items():
        line(f"CPU per event: {name}", f"{seconds / n * 1e6:,.1f} us")
        if name == "broker":
            for group, share in broker.items():
                line(f"  of the broker's: {group}", f"{share / n * 1e6:,.1f} us")
        else:
            line("  of which librdkafka's threads", f"{clients[name] / n * 1e6:,.1f} us")
    line(f"CPU with no events after ({args.idle:.0f} s)", ", ".join(f"{name} {1e3 * v:.1f} ms/s" for name, v in idle.items())
         + f" (the broker's JIT {1e3 * idle_jit:.1f})")
    probe = SyntheticEvents(4, datetime.now(timezone.utc), emitter.emitter_id)
    t = time.process_time()
    for _ in range(5000):
        probe.next_event()["occurred_at"] = datetime.now(timezone.utc)
    line("  of the emitter's: building an event (the load)", f"{(time.process_time() - t) / 5000 * 1e6:,.1f} us")
    per_event = sum(cpu.values()) / n * 1e6
    line("CPU per event, every process", f"{per_event:,.1f} us = {per_event / floor_us:.2f}x the floor "
         f"({datetime.now(timezone.utc):%Y-%m-%d})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--chain-workers", type=int, default=2)
    ap.add_argument("--compression", default="none", help="producer compression: none, lz4, zstd ...")
    ap.add_argument("--rate", type=float, default=2000.0, help="steady state: events/s the emitter sends")
    ap.add_argument("--seconds", type=float, default=60.0, help="steady state: the measured window")
    ap.add_argument("--warmup", type=float, default=180.0,
                    help="steady state: seconds emitted before the window (the broker's JIT compiler is busy for the "
                         "first minutes: about 40%% of its CPU in a window opened after 10 s)")
    ap.add_argument("--idle", type=float, default=15.0, help="steady state: seconds of CPU measured with no events, after the window")
    ap.add_argument("--profile", metavar="DIR", help="steady state: sample every process into DIR (py-spy, JFR)")
    ap.add_argument("--only-steady", dest="skip_stages", action="store_true",
                    help="the ceiling and the steady state only (no latency at 1,000/s, no per-stage backlog runs)")
    ap.add_argument("--emitter-linger-ms", type=int, help="the SDK's linger.ms (default: the settings' default)")
    ap.add_argument("--chain-poll-s", type=float, help="the chain worker's batch window (chain.poll_timeout_s)")
    ap.add_argument("--broker-prop", action="append", default=[], metavar="KEY=VALUE",
                    help="a further server.properties line for the bench's broker (repeatable)")
    ap.add_argument("--broker-jvm", action="append", default=[], metavar="OPTION",
                    help="a further JVM option for the bench's broker (repeatable), given with =: --broker-jvm=-XX:TieredStopAtLevel=1")
    ap.add_argument("--sink-flush-s", type=float, help="the sink's flush interval (sink.flush_interval_s)")
    args = ap.parse_args()
    TUNING.update({k: v for k in ("emitter_linger_ms", "chain_poll_s", "sink_flush_s")
                   if (v := getattr(args, k)) is not None})
    global COMPRESSION
    COMPRESSION = args.compression
    n = args.events
    print(f"aiaudit pipeline benchmark: {n} events, {args.chain_workers} chain worker(s), "
          f"compression {args.compression}, {os.cpu_count()} cores, settings changed: {TUNING or 'none'}"
          + (f", broker: {' '.join(args.broker_prop + args.broker_jvm)}" if args.broker_prop or args.broker_jvm else ""))
    ceiling()

    base = Path(".aiaudit/bench").resolve()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    keys = base / "keys"
    generate_key(keys)
    new_emitter_key(keys / EMITTERS_DIR, "bench", keys / EMITTERS_DIR / KEY_SET_FILE)
    kafka = LocalKafka(make_settings(base, base / "chdb", keys), extra_properties=tuple(args.broker_prop),
                        extra_jvm_options=tuple(args.broker_jvm))
    kafka.up()
    try:
        print("2. end to end (chain + sink running while one emitter sends)")
        if not args.skip_stages:
            latency_at_1000(base, keys, args)
        # 2b. steady state: a fixed rate for a measured window, every process's CPU counted
        steady_state(base, keys, kafka, args)
        if args.skip_stages:
            return

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
        wait(lambda: drained(s))
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
