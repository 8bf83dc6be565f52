"""Anomaly scoring throughput (prints figures; asserts nothing).

    python bench/score_bench.py [--events 50000]

1. The pure step on one core: feature extraction, and IsolationForest scoring per batch size.
2. The scoring worker (Faust agent: regroup by identity, table state, batch scoring, sends):
   a chain topic pre-filled with signed records, then events/s until every score is out.
3. The evaluation table (detectors.evaluate) at a 1% alert budget.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from detectors.evaluate import evaluate, table  # noqa: E402
from detectors.features import FeatureExtractor  # noqa: E402
from detectors.model import save, train  # noqa: E402
from detectors.traffic import labelled_traffic  # noqa: E402
from infra.kafka.broker import LocalKafka  # noqa: E402
from infra.topics import ensure_topics  # noqa: E402
from pipeline.chain.keys import Ed25519Signer  # noqa: E402
from pipeline.chain.record import ChainHead, Source, build_record  # noqa: E402
from pipeline.detect import promote  # noqa: E402
from pipeline.kafka_io import committed_offsets, end_offsets  # noqa: E402
from pipeline.settings import ClickHouseSettings, KafkaSettings, LocalSettings, ScoreSettings, Settings  # noqa: E402
from tests.integration.support import settings_env  # noqa: E402

PORT = 19392


def line(name: str, value: str) -> None:
    print(f"  {name:<48} {value}", flush=True)


def scored_so_far(s: Settings) -> int:
    return sum(max(0, o) for o in committed_offsets(s, s.kafka.score_app, s.kafka.chain_topic, 4).values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    n = ap.parse_args().events
    train_events, test = labelled_traffic(7)
    fx = FeatureExtractor()
    X_train = np.array([fx(e) for e in train_events])
    detector = train(X_train, version="bench", seed=7)
    # A stream of distinct, time-ordered normal traffic long enough for n events.
    stream, _ = labelled_traffic(8, train_days=max(2, n // 2700 + 1))
    events = stream[:n]

    print("1. pure step, one core")
    t = time.perf_counter()
    fx2 = FeatureExtractor()
    X = np.array([fx2(e) for e in events])
    line("feature extraction", f"{n / (time.perf_counter() - t):,.0f} events/s")
    for size in (1, 1000, 10_000):
        t = time.perf_counter()
        for i in range(0, min(n, 20 * size), size):
            detector.score(X[i:i + size])
        done = min(n, 20 * size)
        line(f"IsolationForest scoring, batches of {size}", f"{done / (time.perf_counter() - t):,.0f} events/s")

    print("2. scoring worker (Faust agent) on a pre-filled chain topic")
    base = Path(".aiaudit/score-bench").resolve()
    shutil.rmtree(base, ignore_errors=True)
    s = Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{PORT}", partitions=4),
                 clickhouse=ClickHouseSettings(dsn=SecretStr(f"chdb://{base / 'chdb'}")),
                 score=ScoreSettings(models_dir=base / "models", batch_events=5000, batch_within_s=0.5),
                 local=LocalSettings(state_dir=base, kafka_port=PORT, controller_port=PORT + 1))
    save(detector, s.score.models_dir)
    promote(s.score.models_dir, "bench")
    kafka = LocalKafka(s)
    kafka.up()
    worker = None
    try:
        ensure_topics(s)
        signer = Ed25519Signer.generate()
        producer = Producer(s.kafka_config(**{"linger.ms": 20, "acks": "all"}))
        heads = {}
        for i, ev in enumerate(events):
            ev = {**ev, "event_id": f"{i:032x}"}
            p = zlib.crc32(ev["actor"]["id"].encode()) % 4
            head = heads.get(p) or ChainHead.genesis(f"bench/x/t/p{p}/g1")  # type: ignore[arg-type]
            rec = build_record(head, signer, ev["occurred_at"], Source("t", p, i), ev)
            heads[p] = rec.next_head(i)
            producer.produce(s.kafka.chain_topic, rec.to_wire(), key=rec.origin.encode(), partition=p)
            producer.poll(0)
        producer.flush(60)
        log = open(base / "worker.log", "wb")
        worker = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker", "score"], env=settings_env(s),
                                  stdout=log, stderr=subprocess.STDOUT)

        def alive() -> None:
            if worker.poll() is not None:
                sys.exit(f"the scoring worker exited ({worker.returncode}):\n{(base / 'worker.log').read_text()[-3000:]}")

        # Scores go out one message per batch: count scored events from the worker's committed offsets.
        while (first := scored_so_far(s)) == 0:
            alive()
            time.sleep(0.1)
        t = time.perf_counter()
        while (done := scored_so_far(s)) < n:
            alive()
            time.sleep(0.2)
        line("scored by the worker (after its first batch)", f"{(done - first) / (time.perf_counter() - t):,.0f} events/s")
        alerts = sum(end_offsets(s, s.kafka.alerts_topic, 4).values())
        line("findings raised", f"{alerts:,} ({alerts / n:.2%} of events)")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        kafka.down()
        shutil.rmtree(base, ignore_errors=True)

    print("3. evaluation")
    print(table(*evaluate()))


if __name__ == "__main__":
    main()
