"""Verification's memory against the size of the store (prints figures; asserts nothing).

    python bench/verify_memory_bench.py [--sizes 100000,300000] [--chains 4] [--keep]

For each size: a store of that many records (whole chains with signed checkpoints every 5,000,
built with the real record code, as bench/verify_bench.py builds them), then `aiaudit verify`
over it with every check on, its memory sampled every 50 ms as the PSS of the whole process tree
(the command and its check workers: what the machine gives it), and its rate against the raw rate
all cores verify at (raw Ed25519 verify, measured in this run, times the cores, over two
signatures a record). Then faults are injected into the largest store (a payload changed, a
record removed, an event chained twice) and verify must name each.

Uses a broker of its own (127.0.0.1:19692: verify writes its access record) and .aiaudit/verify-memory.
At 10M, build once and verify again: `--sizes 10000000 --chains 40 --faulted-only --keep`, then the
same with `--reuse` (building takes ~17 minutes here); `--timeline FILE` says which phase holds the memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiaudit.infra.kafka.broker import LocalKafka  # noqa: E402
from aiaudit.infra.topics import ensure_topics  # noqa: E402
from aiaudit.pipeline import store  # noqa: E402
from aiaudit.pipeline.contract.analyst_keys import ANALYSTS_DIR, key_set_file, new_analyst_key  # noqa: E402
from aiaudit.pipeline.keys import ensure_operator_key, operator_key_file  # noqa: E402
from aiaudit.pipeline.settings import Settings  # noqa: E402
from aiaudit.pipeline.store.access_log import LOCAL_READER  # noqa: E402
from bench.verify_bench import line, make_settings, raw_verify_rate, store_records  # noqa: E402
from tests.integration.support import settings_env  # noqa: E402

BASE = Path(".aiaudit/verify-memory").resolve()
PORT = 19692


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _pss_kb(pid: int) -> int:
    try:
        for text in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if text.startswith("Pss:"):
                return int(text.split()[1])
    except OSError:
        pass
    return 0


def kept_uid() -> str:
    """The run id of the largest store a --keep run left (its database is v_<id>)."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{BASE / 'chdb'}")
    found = []
    for (db,) in client.query("SELECT name FROM system.databases WHERE startsWith(name, 'v_')").result_rows:
        if client.command(f"EXISTS TABLE {db}.evidence") == 1:
            found.append((int(client.command(f"SELECT count() FROM {db}.evidence")), db))
    client.close()
    if not found:
        sys.exit(f"--reuse: no store in {BASE / 'chdb'}")
    return max(found)[1].removeprefix("v_")


def newest(settings) -> str:
    """The newest record's time: verify judges the tail rule there (the records are of the past)."""
    client = store.connect(settings)
    (ts,), = client.query(f"SELECT max(ts) FROM {store.database(settings)}.evidence").result_rows
    client.close()
    return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).isoformat()


def run_verify(settings, *extra: str, timeline: Path | None = None) -> tuple[float, int, subprocess.CompletedProcess[str]]:
    """(seconds, peak PSS of the process tree in kB, the run). With `timeline`, a line a second there:
    the seconds since the start, the tree's PSS and each process's, and verify's progress lines as
    they come (which phase holds the memory)."""
    cmd = [sys.executable, "-m", "aiaudit.pipeline.cli", "verify", "--json", "--no-tail-rule", *extra]
    peak, done, err_lines = [0], threading.Event(), []
    log = timeline.open("w", encoding="utf-8") if timeline else None
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=settings_env(settings))

    def sample() -> None:
        last = 0.0
        while not done.is_set():
            each = {p: _pss_kb(p) for p in _tree(proc.pid)}
            peak[0] = max(peak[0], sum(each.values()))
            now = time.perf_counter() - t
            if log and now - last >= 1.0:
                last = now
                log.write(f"{now:8.1f} pss {sum(each.values()) / 1024:7.0f} MB  " + " ".join(
                    f"{p}:{v / 1024:.0f}" for p, v in each.items() if v) + "\n")
                log.flush()
            time.sleep(0.05)

    def read_err() -> None:
        assert proc.stderr is not None
        for text in proc.stderr:
            err_lines.append(text)
            if log:
                log.write(f"{time.perf_counter() - t:8.1f} >> {text.rstrip()[:300]}\n")

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait(timeout=7200)
    elapsed = time.perf_counter() - t
    done.set()
    sampler.join()
    reader.join(10)
    if log:
        log.close()
    return elapsed, peak[0], subprocess.CompletedProcess(cmd, proc.returncode, out, "".join(err_lines))


def inject_faults(settings) -> dict[str, str]:
    """A payload changed, a record removed, and a row's event_id column set to another event's (a
    column_mismatch, and an event chained twice as far as the typed columns go: the SQL check's case)."""
    client = store.connect(settings)
    db = store.database(settings)
    (origin,), = client.query(f"SELECT origin FROM {db}.evidence ORDER BY origin LIMIT 1").result_rows
    (n,), = client.query(f"SELECT max(seq) FROM {db}.evidence WHERE origin = %(o)s", parameters={"o": origin}).result_rows
    a, b = n // 3, 2 * n // 3
    client.command(f"ALTER TABLE {db}.evidence UPDATE payload = replaceOne(payload, '\"decision\":\"allow\"', "
                   f"'\"decision\":\"deny\"') WHERE origin = %(o)s AND seq = {a}", parameters={"o": origin})
    client.command(f"ALTER TABLE {db}.evidence DELETE WHERE origin = %(o)s AND seq = {b}", parameters={"o": origin})
    c = n - 10
    (first,), = client.query(f"SELECT event_id FROM {db}.evidence WHERE origin = %(o)s AND seq = 1",
                             parameters={"o": origin}).result_rows
    client.command(f"ALTER TABLE {db}.evidence UPDATE event_id = %(e)s WHERE origin = %(o)s AND seq = {c}",
                   parameters={"o": origin, "e": first})
    client.close()
    return {"changed": f"{origin} seq {a}", "removed": f"{origin} seq {b}", "event id of seq 1 at": f"seq {c}"}


def faulted_verify(settings: Settings, size: int, floor: float, timeline: Path | None = None) -> None:
    """Inject the faults, then one verify: its memory and rate, and what it found."""
    faults = inject_faults(settings)
    line(f"faults injected into the {size:,}-record store", ", ".join(f"{k} {v}" for k, v in faults.items()))
    elapsed, peak_kb, done = run_verify(settings, timeline=timeline)
    report = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    reasons = sorted({f"{f['reason']} at {f['origin']} seq {f['seq']}" for f in report.get("failures", [])})
    line(f"aiaudit verify, {size:,} records (faulted)", f"exit {done.returncode}, {elapsed:.1f} s = {size / elapsed:,.0f} "
         f"records/s = {size / elapsed / floor:.0%} of all cores' raw; peak PSS {peak_kb / 1024:,.0f} MB "
         f"({peak_kb * 1024 / size:,.0f} B/record)")
    line("  verify found", f"{len(reasons)} distinct failure(s): " + "; ".join(reasons[:10]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,300000")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--faulted-only", action="store_true",
                    help="one verify a size, over the store with the faults injected (memory, rate and the faults "
                         "found in one run: at 10M each verify takes ~20 minutes here)")
    ap.add_argument("--timeline", type=Path, default=None,
                    help="write each verify's memory a second, per process, with its progress lines, to this file")
    ap.add_argument("--keep", action="store_true", help=f"leave the store in {BASE} (for --reuse)")
    ap.add_argument("--reuse", action="store_true",
                    help="verify the store a --keep run left (one size: the one it was built with), not a new one")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.reuse and len(sizes) != 1:
        ap.error("--reuse verifies one store: give the one size it was built with")
    reuse = args.reuse and (BASE / "chdb").is_dir()
    if not reuse:
        shutil.rmtree(BASE, ignore_errors=True)
        BASE.mkdir(parents=True)
    cores = os.cpu_count() or 1
    kafka = None
    try:
        base_settings = make_settings(BASE / "keys", BASE / "chdb", BASE, PORT)
        if not reuse:
            new_analyst_key(base_settings.signing.keys_dir / ANALYSTS_DIR, LOCAL_READER, key_set_file(base_settings),
                            console=True)
        ensure_operator_key(operator_key_file(base_settings.signing.keys_dir, None))
        kafka = LocalKafka(base_settings)
        kafka.up()
        print(f"verify memory bench: sizes {', '.join(f'{s:,}' for s in sizes)}, {args.chains} chains, {cores} cores")
        raw = raw_verify_rate()
        floor = raw * cores / 2  # two signatures a record (the record's and the emitter's)
        line("raw Ed25519 verify, one core (reference)", f"{raw:,.0f}/s; all cores, 2 a record: {floor:,.0f} records/s")
        settings = base_settings
        for size in sizes:
            settings = make_settings(BASE / "keys", BASE / "chdb", BASE, PORT, uid=kept_uid() if reuse else None)
            ensure_topics(settings)
            if reuse:
                line("reusing the store a --keep run left", str(BASE))
            else:
                store_records(settings, size, args.chains)
            if args.faulted_only:
                faulted_verify(settings, size, floor, args.timeline)
                continue
            extra = ("--workers", str(args.workers)) if args.workers else ()
            elapsed, peak_kb, done = run_verify(settings, *extra, timeline=args.timeline)
            report = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
            line(f"aiaudit verify, {size:,} records", f"{'ok' if report.get('ok') else 'NOT OK (exit ' + str(done.returncode) + ')'}"
                 f", {elapsed:.1f} s = {size / elapsed:,.0f} records/s = {size / elapsed / floor:.0%} of all cores' raw; "
                 f"peak PSS {peak_kb / 1024:,.0f} MB ({peak_kb * 1024 / size:,.0f} B/record)")
            if not report.get("ok"):
                line("  failures", "; ".join(sorted({f"{f['reason']}: {f['detail'][:100]}" for f in report.get("failures", [])}))[:600]
                     or done.stderr[-600:])
        if args.faulted_only:
            return
        faults = inject_faults(settings)
        elapsed, peak_kb, done = run_verify(settings)
        report = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
        reasons = sorted({f"{f['reason']} at {f['origin']} seq {f['seq']}" for f in report.get("failures", [])})
        line(f"faults injected into the {sizes[-1]:,}-record store", ", ".join(f"{k} {v}" for k, v in faults.items()))
        line("  verify found", f"exit {done.returncode}; {len(reasons)} distinct failure(s): " + "; ".join(reasons[:10]))
        line("  its peak PSS", f"{peak_kb / 1024:,.0f} MB")
    finally:
        if kafka is not None:
            kafka.down()
        if not args.keep:
            shutil.rmtree(BASE, ignore_errors=True)


if __name__ == "__main__":
    main()
