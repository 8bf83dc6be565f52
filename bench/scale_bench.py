"""Scale-out from one core to two (prints figures; asserts nothing).

    python bench/scale_bench.py [--events 120000] [--partitions 8]

The two hot-path workers, each on a backlog spread over 8 partitions: one worker process pinned to
one core (`taskset -c 0`), then two worker processes of the same consumer group allowed both cores
(`taskset -c 0,1`). Events/s of each run between 20% and 90% of the backlog committed (start-up and
the group's rebalances left out), the workers' and the broker's CPU over the same window, and the
efficiency both ways: throughput rate(two) / (2 x rate(one)), and events a worker core (rate over
the cores the workers used), which the broker's share of the same two cores does not blur.

1. The chain worker (decode, emitter signature check, record signing, one transaction per partition
   batch) on a requests topic the SDK filled with signed events.
2. The scoring worker (record parse, features, IsolationForest, one transaction per batch) on a chain
   topic filled with signed records.

The broker runs unpinned beside them: on a 2-core machine it takes its share of the same cores in
both runs, so its CPU an event is printed too. Uses its own broker (port 19292, as
bench/pipeline_bench.py: run one at a time) and state folder (.aiaudit/scale-bench), removed after.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from aiaudit.detectors.features import FeatureExtractor  # noqa: E402
from aiaudit.detectors.model import save, train  # noqa: E402
from aiaudit.detectors.traffic import labelled_traffic  # noqa: E402
from aiaudit.infra.kafka.broker import LocalKafka  # noqa: E402
from aiaudit.infra.topics import ensure_topics  # noqa: E402
from aiaudit.pipeline.contract.emitter_keys import EMITTERS_DIR, KEY_SET_FILE, new_emitter_key  # noqa: E402
from aiaudit.pipeline.keys import active_key_file, generate_key, load_signer  # noqa: E402
from aiaudit.pipeline.score.models import promote  # noqa: E402
from aiaudit.pipeline.settings import (  # noqa: E402
    ClickHouseSettings,
    KafkaSettings,
    LocalSettings,
    ScoreSettings,
    Settings,
    SigningSettings,
)
from bench import pipeline_bench as pb  # noqa: E402
from bench import score_bench as sb  # noqa: E402
from tests.integration.support import settings_env  # noqa: E402

RUNS = (("one core", "0", 1), ("two cores", "0,1", 2))  # (label, taskset cpu list, worker processes)


@dataclass(frozen=True)
class Run:
    rate: float  # events/s between 20% and 90% of the backlog (after every process has its partitions)
    worker_cores: float  # the workers' CPU seconds a second over that window
    broker_cores: float  # the broker's

    @property
    def per_core(self) -> float:
        return self.rate / self.worker_cores


def windowed(progress: Callable[[], int], n: int, pids: list[int], broker_pid: int, poll_s: float = 0.25) -> Run:
    """Poll `progress` (events committed) until n; the rate and CPU between 20% and 90% of n: the
    first batches (start-up, the group's rebalances as the processes join) and the tail are left out."""
    marks: dict[str, tuple[float, int, float, float]] = {}
    stalled_at, last = time.monotonic(), -1
    while True:
        done = progress()
        now = time.monotonic()
        for name, share in (("from", 0.2), ("to", 0.9)):
            if name not in marks and done >= share * n:
                marks[name] = (now, done, sum(pb.cpu_seconds(p) for p in pids), pb.cpu_seconds(broker_pid))
        if "to" in marks:
            break
        if done != last:
            stalled_at, last = now, done
        elif now - stalled_at > 60:
            raise SystemExit(f"stalled at {done:,} of {n:,}")
        time.sleep(poll_s)
    (t0, c0, w0, b0), (t1, c1, w1, b1) = marks["from"], marks["to"]
    return Run((c1 - c0) / (t1 - t0), (w1 - w0) / (t1 - t0), (b1 - b0) / (t1 - t0))


def report(label: str, cpus: str, count: int, run: Run) -> None:
    pb.line(f"{count} process(es) on {label} (taskset -c {cpus})",
            f"{run.rate:,.0f} events/s; workers {run.worker_cores:.2f} cores = {run.per_core:,.0f} events/s a core; "
            f"broker {run.broker_cores:.2f} cores")


def efficiency(runs: dict[int, Run]) -> None:
    one, two = runs[1], runs[2]
    pb.line("efficiency, one core to two", f"throughput {two.rate / (2 * one.rate):.0%}; "
            f"events a worker core {two.per_core / one.per_core:.0%}")


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def with_partitions(s: Settings, partitions: int) -> Settings:
    return s.model_copy(update={"kafka": s.kafka.model_copy(update={"partitions": partitions})})


def chain_run(base: Path, keys: Path, kafka: LocalKafka, n: int, partitions: int, cpus: str, count: int) -> Run:
    """`count` chain workers pinned to `cpus` on a backlog of n signed events."""
    s = with_partitions(pb.make_settings(base, base / "chdb", keys), partitions)
    ensure_topics(s)
    pb.emit(s, n, now_stamped=False)
    procs = [spawn(["taskset", "-c", cpus, sys.executable, "-m", "aiaudit.pipeline.cli", "worker", "chain",
                    "--instance-id", f"scale-{cpus}-{i}"], settings_env(s), base / f"chain-{cpus}-{i}.log")
             for i in range(count)]
    try:
        return windowed(lambda: pb.chained(s), n, [p.pid for p in procs], kafka.pid() or 0)
    finally:
        pb.stop(procs)


def score_run(s: Settings, base: Path, kafka: LocalKafka, n: int, cpus: str, count: int) -> Run:
    """`count` scoring workers pinned to `cpus` on the chain topic's n records (a group, a state topic and
    a scores topic of this run's own, as bench/score_bench.py does)."""
    name = f"pin{count}"
    s = s.model_copy(update={"kafka": s.kafka.model_copy(update={
        "score_app": f"{s.kafka.score_app}-{name}", "score_state_topic": f"{s.kafka.score_state_topic}.{name}",
        "scores_topic": f"{s.kafka.scores_topic}.{name}", "alerts_topic": f"{s.kafka.alerts_topic}.{name}"})})
    ensure_topics(s)
    procs = []
    for i in range(count):
        (base / f"{name}-{i}").mkdir()
        env = {**settings_env(s), "AIAUDIT_LOCAL__STATE_DIR": str(base / f"{name}-{i}")}
        procs.append(spawn(["taskset", "-c", cpus, sys.executable, "-m", "aiaudit.pipeline.cli", "worker", "score"],
                           env, base / f"{name}-{i}.log"))
    try:
        return windowed(lambda: sb.scored_so_far(s), n, [p.pid for p in procs], kafka.pid() or 0)
    finally:
        pb.stop(procs)


def score_settings(base: Path, partitions: int) -> Settings:
    keys = base / "score-keys"
    generate_key(keys)
    return Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{pb.PORT}", partitions=partitions),
                    signing=SigningSettings(keys_dir=keys),
                    clickhouse=ClickHouseSettings(dsn=SecretStr(f"chdb://{base / 'chdb'}")),
                    score=ScoreSettings(models_dir=base / "models"),
                    local=LocalSettings(state_dir=base, kafka_port=pb.PORT, controller_port=pb.PORT + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=120_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--only", choices=("chain", "score"), help="one worker kind only")
    args = ap.parse_args()
    n, parts = args.events, args.partitions
    if shutil.which("taskset") is None:
        sys.exit("taskset (util-linux) is needed to pin the workers")
    print(f"aiaudit scale-out benchmark: {n:,} events over {parts} partitions, one core then two")
    base = Path(".aiaudit/scale-bench").resolve()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    keys = base / "keys"
    generate_key(keys)
    new_emitter_key(keys / EMITTERS_DIR, "bench", keys / EMITTERS_DIR / KEY_SET_FILE)
    kafka = LocalKafka(pb.make_settings(base, base / "chdb", keys))
    kafka.up()
    try:
        runs: dict[int, Run] = {}
        if args.only != "score":
            print("1. chain worker")
            for label, cpus, count in RUNS:
                runs[count] = chain_run(base, keys, kafka, n, parts, cpus, count)
                report(label, cpus, count, runs[count])
            efficiency(runs)
        if args.only == "chain":
            return

        print("2. scoring worker")
        train_events, _ = labelled_traffic(7)
        fx = FeatureExtractor()
        s = score_settings(base, parts)
        detector = train(np.array([fx(e) for e in train_events]), version="bench", seed=7)
        save(detector, s.score.models_dir)
        promote(s.score.models_dir, "bench", load_signer(active_key_file(s.signing.keys_dir, None)), by="bench")
        stream, _ = labelled_traffic(8, train_days=max(2, n // 4000 + 1), test_days=1)
        wire, _records = sb.chained_backlog(stream[:n], parts)
        ensure_topics(s)
        sb.fill_chain_topic(s, wire)
        for label, cpus, count in RUNS:
            runs[count] = score_run(s, base, kafka, len(wire), cpus, count)
            report(label, cpus, count, runs[count])
        efficiency(runs)
    finally:
        for p in pb.STARTED:
            if p.poll() is None:
                p.kill()
        kafka.down()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
