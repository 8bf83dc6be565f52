"""Scale-out from one core to two (prints figures; asserts nothing).

    python bench/scale_bench.py [--events 40000] [--partitions 8]

The two hot-path workers, each on a backlog spread over 8 partitions: one worker process pinned to
one core (`taskset -c 0`), then two worker processes of the same consumer group allowed both cores
(`taskset -c 0,1`). Events/s of each run from the first committed batch to the last, and the
efficiency rate(two) / (2 x rate(one)).

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


def with_partitions(s: Settings, partitions: int) -> Settings:
    return s.model_copy(update={"kafka": s.kafka.model_copy(update={"partitions": partitions})})


def chain_run(base: Path, keys: Path, kafka: LocalKafka, n: int, partitions: int, cpus: str, count: int
              ) -> tuple[float, float]:
    """(events/s, broker CPU us an event) of `count` chain workers pinned to `cpus` on a backlog of n."""
    s = with_partitions(pb.make_settings(base, base / "chdb", keys), partitions)
    ensure_topics(s)
    pb.emit(s, n, now_stamped=False)
    procs = []
    for i in range(count):
        log = open(base / f"chain-{cpus}-{i}.log", "wb")  # noqa: SIM115  # owned by the child
        procs.append(subprocess.Popen(["taskset", "-c", cpus, sys.executable, "-m", "aiaudit.pipeline.cli", "worker",
                                       "chain", "--instance-id", f"scale-{cpus}-{i}"],
                                      env=settings_env(s), stdout=log, stderr=subprocess.STDOUT))
    try:
        pb.wait(lambda: pb.chained(s) > 0, 120)
        first, broker_before = pb.chained(s), pb.cpu_seconds(kafka.pid() or 0)
        elapsed = pb.wait(lambda: pb.chained(s) >= n, poll_s=0.5)
        broker = pb.cpu_seconds(kafka.pid() or 0) - broker_before
    finally:
        pb.stop(procs)
    return (n - first) / elapsed, broker / (n - first) * 1e6


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
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--partitions", type=int, default=8)
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
        print("1. chain worker")
        rates = {}
        for label, cpus, count in RUNS:
            rates[count], broker_us = chain_run(base, keys, kafka, n, parts, cpus, count)
            pb.line(f"{count} process(es) on {label} (taskset -c {cpus})",
                    f"{rates[count]:,.0f} events/s ({broker_us:,.0f} us of broker CPU an event)")
        pb.line("efficiency, one core to two", f"{rates[2] / (2 * rates[1]):.0%}")

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
            run = sb.run_workers(s, base, len(wire), count, ["taskset", "-c", cpus, sys.executable, "-m",
                                                             "aiaudit.pipeline.cli", "worker", "score"], f"pin{count}")
            rates[count] = run[0] if run is not None else float("nan")
            pb.line(f"{count} process(es) on {label} (taskset -c {cpus})", f"{rates[count]:,.0f} events/s")
        pb.line("efficiency, one core to two", f"{rates[2] / (2 * rates[1]):.0%}")
    finally:
        for p in pb.STARTED:
            if p.poll() is None:
                p.kill()
        kafka.down()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
