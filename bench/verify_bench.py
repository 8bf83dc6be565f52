"""Verification and proof speed on this machine (prints figures; asserts nothing).

    python bench/verify_bench.py [--records 200000] [--chains 4] [--proof-sizes 1000000,10000000]

1. Reference: the raw Ed25519 verify rate of the `cryptography` package on one core (1.5 KB
   messages), measured in this run.
2. `aiaudit verify` over N stored records (whole chains, signed checkpoints every 5,000
   records): wall time of the command, start-up included, as records/s and as a ratio to the
   raw rate, with `--workers 1` and with the default (one per core).
3. Inclusion-proof latency at 1M and 10M leaves: a generated chain whose leaf hashes and tiles
   are inserted directly (no signatures: proofs read only hashes), then `aiaudit proof
   inclusion` for random records through the library call, median and p99 per proof, and the
   number of store queries per proof.

4. The access record's digest of the rows a verify reads (every read through aiaudit is
   recorded, with a digest of what was served): its cost per row beside the raw verify.

5. `aiaudit report` over the whole stored period (the evidence pack: its export, one inclusion
   proof per record, and the figures), then `aiaudit verify --report` on it, offline: wall time,
   the export's size and each command's peak memory (RSS). Run first, so the peak is its own.
   `--skip-verify` and `--proof-sizes ""` leave steps 2 and 3 out.

The records are built with the real record code and written with the sink's row builders into an
embedded ClickHouse (chDB) under .aiaudit/verify-bench, removed afterwards. A broker of its own
(127.0.0.1:19592) takes the access records `aiaudit verify` writes, signed by the bench's reader key.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from aiaudit.infra.kafka.broker import LocalKafka  # noqa: E402
from aiaudit.infra.topics import ensure_topics  # noqa: E402
from aiaudit.pipeline import names, store  # noqa: E402
from aiaudit.pipeline.chain.checkpoint import TreeState, checkpoint_note, extend  # noqa: E402
from aiaudit.pipeline.chain.merkle import CompactRange  # noqa: E402
from aiaudit.pipeline.chain.note import SIG_ED25519, NoteSigner  # noqa: E402
from aiaudit.pipeline.chain.record import ChainHead, ChainId, Source, build_record  # noqa: E402
from aiaudit.pipeline.contract import to_json_event  # noqa: E402
from aiaudit.pipeline.contract.access import ResultDigest  # noqa: E402
from aiaudit.pipeline.contract.analyst_keys import ANALYSTS_DIR, key_set_file, new_analyst_key  # noqa: E402
from aiaudit.pipeline.emit.synthetic import SyntheticEvents  # noqa: E402
from aiaudit.pipeline.keys import (  # noqa: E402
    checkpoint_key_file,
    ensure_operator_key,
    generate_key,
    load_checkpoint_key,
    load_signer,
    operator_key_file,
)
from aiaudit.pipeline.settings import (  # noqa: E402
    ChainSettings,
    ClickHouseSettings,
    KafkaSettings,
    LocalSettings,
    Settings,
    SigningSettings,
)
from aiaudit.pipeline.store import checkpoints, evidence  # noqa: E402
from aiaudit.pipeline.store.access_log import LOCAL_READER  # noqa: E402
from tests.integration.support import settings_env  # noqa: E402

CHECKPOINT_EVERY = 5_000
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
BASE = Path(".aiaudit/verify-bench").resolve()
PORT = 19592


def line(name: str, value: str) -> None:
    print(f"  {name:<58} {value}", flush=True)


def raw_verify_rate(n: int = 20_000) -> float:
    key = Ed25519PrivateKey.generate()
    pub, msg = key.public_key(), os.urandom(1500)
    sig = key.sign(msg)
    t = time.perf_counter()
    for _ in range(n):
        pub.verify(sig, msg)
    return n / (time.perf_counter() - t)


def _build_chain(args: tuple[str, int, int, str, str]) -> tuple[list[list], list[list]]:
    """Rows of one chain (records and tree states), built with the real record code."""
    origin, n, seed, key_path, cp_path = args
    signer, notary_key = load_signer(Path(key_path)), load_checkpoint_key(Path(cp_path))
    notary = NoteSigner.local(origin, SIG_ED25519, notary_key)
    gen = SyntheticEvents(seed, T0, f"bench-emitter-{seed}")
    head, tree = ChainHead.genesis(ChainId(origin)), CompactRange()
    rows, states, pending = [], [], []
    for i in range(n):
        ev = to_json_event({**gen.next_event(), "emitter_seq": i})  # the emitter numbers its events
        rec = build_record(head, signer, ev["occurred_at"], Source("ai.requests", seed, i), ev)
        head = rec.next_head(i)
        rows.append(evidence.row(rec))
        pending.append(rec.leaf_hash)
        if len(pending) == CHECKPOINT_EVERY or i == n - 1:
            tree, tiles = extend(tree, pending)
            pending = []
            note = checkpoint_note(origin, tree, notary)
            states.append(checkpoints.row(TreeState(origin, tree, tuple(tiles), note, ev["occurred_at"])))
    return rows, states


def make_settings(keys: Path, chdb: Path, base: Path = BASE, port: int = PORT, uid: str | None = None) -> Settings:
    uid = uid or uuid.uuid4().hex[:8]
    return Settings(chain=ChainSettings(org="bench", env=uid), signing=SigningSettings(keys_dir=keys),
                    kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"),
                    clickhouse=ClickHouseSettings(dsn=SecretStr(f"chdb://{chdb}"), database=f"v_{uid}"),
                    local=LocalSettings(state_dir=base, kafka_port=port, controller_port=port + 1))


def digest_rate(n: int = 100_000) -> float:
    """Rows/s of the access record's digest over rows shaped like the ones verify reads."""
    rows = [("bench/x/ai.requests/p0/g1", i, os.urandom(900), os.urandom(64), os.urandom(32), T0) for i in range(n)]
    t = time.perf_counter()
    ResultDigest().add(rows)
    return n / (time.perf_counter() - t)


def store_records(settings: Settings, total: int, chains: int) -> list[str]:
    key_path, _ = generate_key(settings.signing.keys_dir)
    cp_path = checkpoint_key_file(settings.signing.keys_dir, settings.signing.checkpoint_key_file)
    origins = [f"bench/{settings.chain.env}/ai.requests/p{p}/g1" for p in range(chains)]
    jobs = [(o, total // chains, p, str(key_path), str(cp_path)) for p, o in enumerate(origins)]
    t = time.perf_counter()
    client = store.connect(settings)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for rows, states in pool.map(_build_chain, jobs):
            for i in range(0, len(rows), 20_000):
                store.insert(client, f"{store.database(settings)}.{names.EVIDENCE_TABLE}", rows[i:i + 20_000], evidence.COLUMNS)
            store.insert(client, f"{store.database(settings)}.{names.CHECKPOINTS_TABLE}", states, checkpoints.COLUMNS)
    client.close()
    line("records built, signed and stored", f"{total:,} in {time.perf_counter() - t:.1f} s")
    return origins


def time_verify(settings: Settings, workers: int | None) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "aiaudit.pipeline.cli", "verify", "--json"] + (["--workers", str(workers)] if workers else [])
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=settings_env(settings), timeout=3600)
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"verify failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return elapsed, out.stdout


def store_hashes_only(settings: Settings, size: int) -> str:
    """A chain of `size` leaves whose leaf hashes and tiles are stored without records (proof reads only these)."""
    origin = f"bench/{settings.chain.env}/proofs/p0/g{size}"
    client = store.connect(settings)
    tree = CompactRange()
    rng = random.Random(size)
    tiles_all = []
    t0 = time.perf_counter()
    for start in range(0, size, 100_000):
        leaves = [rng.randbytes(32).hex() for _ in range(min(100_000, size - start))]
        tree, tiles = extend(tree, leaves)
        tiles_all.extend(tiles)
        batch = [[origin, start + i, leaf, "0" * 64, "k", T0, "", 0, 0, f"e{start + i}", "x", start + i, "human",
                  "a", None, "r", "route", "chat", "p", "m", "public", [], None, "pid", "pv", "allow", "s", 0, 0, 0,
                  "{}", ""] for i, leaf in enumerate(leaves)]
        store.insert(client, f"{store.database(settings)}.{names.EVIDENCE_TABLE}", batch, evidence.COLUMNS)
    key = load_checkpoint_key(checkpoint_key_file(settings.signing.keys_dir, settings.signing.checkpoint_key_file))
    note = checkpoint_note(origin, tree, NoteSigner.local(origin, SIG_ED25519, key))
    for i in range(0, len(tiles_all), 50_000):
        part = tuple(tiles_all[i:i + 50_000])
        last = i + 50_000 >= len(tiles_all)
        store.insert(client, f"{store.database(settings)}.{names.CHECKPOINTS_TABLE}",
                     [checkpoints.row(TreeState(origin, tree, part, note if last else None, "2026-11-01T00:00:00Z"))],
                     checkpoints.COLUMNS)
    client.close()
    line(f"chain of {size:,} leaf hashes + {len(tiles_all):,} tiles stored", f"{time.perf_counter() - t0:.1f} s")
    return origin


def time_proofs(settings: Settings, origin: str, size: int, n: int = 50) -> None:
    from aiaudit.pipeline.query import proofs

    client = store.connect(settings)
    rng = random.Random(7)
    proofs.inclusion(client, settings, origin, 0)  # warm the connection
    times = []
    for _ in range(n):
        index = rng.randrange(size)
        t = time.perf_counter()
        proof = proofs.inclusion(client, settings, origin, index)
        times.append(time.perf_counter() - t)
        assert proof["size"] == size
    client.close()
    times.sort()
    line(f"inclusion proof at {size:,} leaves (n={n}, checked before return)",
         f"median {statistics.median(times) * 1000:.1f} ms, p99 {times[int(0.99 * (n - 1))] * 1000:.1f} ms")


def time_report(settings: Settings, out: Path) -> None:
    """Step 5: the report over every stored record, then its offline check; each one's peak RSS."""
    import resource

    def run(*args: str) -> tuple[float, int, subprocess.CompletedProcess[str]]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", *args], capture_output=True, text=True,
                              env=settings_env(settings), timeout=7200)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return time.perf_counter() - t, peak if peak > before else -1, done

    period = ("--since", "2026-01-01T00:00:00Z", "--until", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    elapsed, peak, made = run("report", *period, "--out", str(out))
    if made.returncode != 0:
        raise SystemExit(f"report failed ({made.returncode}): {made.stderr[-2000:]}")
    size = (out / "export.jsonl").stat().st_size
    line("aiaudit report over every stored record (export with proofs, figures, page)",
         f"{elapsed:.1f} s, export {size / 1e6:,.0f} MB, page {(out / 'report.html').stat().st_size / 1e6:.2f} MB, "
         f"peak RSS {'n/a' if peak < 0 else f'{peak / 1024:,.0f} MB'}")
    elapsed, peak, checked = run("verify", "--report", str(out))
    line("aiaudit verify --report (offline: seal, export, every figure again)",
         f"{elapsed:.1f} s (exit {checked.returncode}), peak RSS {'n/a (below the report' + chr(39) + 's)' if peak < 0 else f'{peak / 1024:,.0f} MB'}")
    if checked.returncode != 0:  # the bench's chains have no signed times: their end after the period is not shown
        problems = [x.strip() for x in checked.stdout.splitlines() if "FAIL" in x or "completeness:" in x]
        line("  why it does not pass", (problems or ["(nothing printed)"])[0][:160])
        line("  records proven included", next((x.strip()[:160] for x in checked.stdout.splitlines() if "proven" in x),
                                               "(not said)"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--proof-sizes", default="1000000,10000000")
    ap.add_argument("--skip-verify", action="store_true", help="leave out step 2 (aiaudit verify over the store)")
    args = ap.parse_args()
    shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(parents=True)
    try:
        settings = make_settings(BASE / "keys", BASE / "chdb")
        new_analyst_key(settings.signing.keys_dir / ANALYSTS_DIR, LOCAL_READER, key_set_file(settings), console=True)
        ensure_operator_key(operator_key_file(settings.signing.keys_dir, None))  # seals the report's export
        kafka = LocalKafka(settings)
        kafka.up()
        ensure_topics(settings)
        print(f"verify bench: {args.records:,} records in {args.chains} chains, {os.cpu_count()} cores")
        raw = raw_verify_rate()
        line("raw Ed25519 verify, cryptography, one core (reference)", f"{raw:,.0f} verifications/s")
        store_records(settings, args.records, args.chains)
        time_report(settings, BASE / "report")
        for workers in (() if args.skip_verify else (1, None)):
            elapsed, _ = time_verify(settings, workers)
            rate = args.records / elapsed
            label = "aiaudit verify --workers 1" if workers == 1 else "aiaudit verify (default workers)"
            line(f"{label}, start-up included", f"{elapsed:.1f} s = {rate:,.0f} records/s = {rate / raw:.2f}x raw")
        raw2 = raw_verify_rate()
        line("raw Ed25519 verify again (drift check)", f"{raw2:,.0f} verifications/s")
        digest = digest_rate()
        line("access digest of the rows verify reads, one core", f"{digest:,.0f} rows/s = {digest / raw2:.1f}x raw "
             f"verify (adds {raw2 / digest:.0%} of a verify's time per record on one core)")
        for size in [int(s) for s in args.proof_sizes.split(",") if s]:
            origin = store_hashes_only(settings, size)
            time_proofs(settings, origin, size)
    finally:
        if "kafka" in locals():
            kafka.down()
        shutil.rmtree(BASE, ignore_errors=True)


if __name__ == "__main__":
    main()
