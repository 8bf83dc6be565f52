"""What keeping content costs the gateway's content keeper, against sealing alone (prints figures;
asserts nothing).

    python bench/content_keys_bench.py [--jobs 50000] [--subjects 50]

The reference is the pure step, measured in the same run: the same jobs sealed (sealed.seal under
a content key from fresh subject and record keys) with no key store. Then the same jobs through
ContentKeeper on a real key folder (pipeline/contract/subject_keys.py: a file a subject, a row a
record in records.sqlite3, one commit a batch), the content producer a counter: CPU a job (user and
system), jobs a second, what the folder holds on disk afterwards (bytes and files a record), then
listing the expired half (`aiaudit erase --expired`'s query) and destroying record keys one at a
time (`aiaudit erase --event-id`) and 500 at a time (expiry's batch).

Uses a temporary folder under .aiaudit/ (removed afterwards). Runs of 2026-12-05 in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiaudit.pipeline.contract import sealed  # noqa: E402
from aiaudit.pipeline.contract.subject_keys import SubjectKeys  # noqa: E402
from aiaudit.pipeline.gateway.evidence import ContentKeeper, KeepJob  # noqa: E402

COMMITMENT_KEY = {"key_b64": "q2Vb7yOq0n4zG9uB2m8f7XlS1cF4cQ2d6Jx0n9oYk1E="}  # what `content: commitments` keeps


class Counted:
    """The keeper's content producer, counting (the Kafka side is the gateway bench's)."""

    def __init__(self) -> None:
        self.kept = self.lost = 0

    def keep_content(self, _message: dict[str, Any]) -> None:
        self.kept += 1

    def flush_content(self, _timeout_s: float) -> int:
        return 0

    def count_lost(self) -> None:
        self.lost += 1


def cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_stime


def line(name: str, value: str) -> None:
    print(f"  {name:<46} {value}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=50_000)
    ap.add_argument("--subjects", type=int, default=50, help="distinct people the jobs are about")
    args = ap.parse_args()
    n = args.jobs
    # Half expired by 2026-06-01, half not.
    jobs = [KeepJob(f"event-{i:09d}", (f"person-{i % args.subjects}@acme",),
                    "2026-01-01T00:00:00+00:00" if i % 2 else "2027-06-01T00:00:00+00:00", "standard", COMMITMENT_KEY)
            for i in range(n)]

    c0, _ = cpu()
    for job in jobs:
        sealed.seal(sealed.content_key([os.urandom(32)], os.urandom(32), job.event_id), job.event_id, job.content)
    pure = (cpu()[0] - c0) / n

    state = Path(__file__).resolve().parents[1] / ".aiaudit"
    state.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=state, prefix="content-keys-bench-"))
    try:
        keys = SubjectKeys(folder / "keys")
        sent = Counted()
        keeper = ContentKeeper(keys, sent)  # type: ignore[arg-type]  # a counter for the producer
        (c0, s0), t0 = cpu(), time.perf_counter()
        for job in jobs:
            while keeper._queue.qsize() > 5_000:  # as a gateway would: never past the queue's bound
                time.sleep(0.002)
            keeper.submit(job)
        left = keeper.close(600)
        (c1, s1), t1 = cpu(), time.perf_counter()
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        files = sum(1 for p in folder.rglob("*") if p.is_file())
        print(f"{n:,} jobs ({args.subjects} people), content: commitments")
        line("sealing alone (the reference)", f"{pure * 1e6:.1f} us of CPU a job")
        line("through the keeper", f"{(c1 - c0) / n * 1e6:.1f} us of CPU a job (system {(s1 - s0) / n * 1e6:.1f}) "
             f"= {(c1 - c0) / n / pure:.1f}x sealing alone; {n / (t1 - t0):,.0f} jobs/s")
        line("kept / lost / left", f"{sent.kept:,} / {sent.lost:,} / {left:,}")
        line("the key folder", f"{size / n:,.0f} bytes a record, {files:,} files in all")

        now = datetime(2026, 6, 1, tzinfo=timezone.utc)
        t = time.perf_counter()
        due = [event_id for event_id, _ in keys.expired(now)]
        line("listing the expired", f"{len(due):,} in {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        for event_id in due[:1000]:
            keys.erase_record(event_id)
        line("destroying a record key, one at a time", f"{(time.perf_counter() - t) / 1000 * 1e3:.2f} ms each")
        t, rest = time.perf_counter(), due[1000:]
        for i in range(0, len(rest), 500):
            keys.erase_records(rest[i:i + 500])
        line("destroying record keys, 500 at a time", f"{(time.perf_counter() - t) / max(1, len(rest)) * 1e3:.3f} ms each")
        line("record keys left", f"{keys.records.count():,} (of {n:,}; {n - len(due):,} not expired)")
        keys.close()
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
