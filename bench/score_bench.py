"""Anomaly scoring throughput (prints figures; asserts nothing).

    python bench/score_bench.py [--events 50000]

1. The pure step on one core: feature extraction, and IsolationForest scoring per batch size.
2. The scoring worker (Faust agent: table state, batch scoring, sends) on a chain topic
   pre-filled with signed records: events/s with one and with --workers processes; then the
   same topic through a Faust agent that does nothing (the framework's ceiling here), and
   through the pure step behind a confluent-kafka batch consumer (a design without Faust).
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
from confluent_kafka import Consumer, Producer  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from detectors.evaluate import evaluate, table  # noqa: E402
from detectors.features import FeatureExtractor, IdentityState  # noqa: E402
from detectors.model import Detector, save, train  # noqa: E402
from detectors.traffic import labelled_traffic  # noqa: E402
from infra.kafka.broker import LocalKafka  # noqa: E402
from infra.topics import ensure_topics  # noqa: E402
from pipeline.chain.record import ChainHead, ChainId, Record, Source, build_record  # noqa: E402
from pipeline.kafka import config as kafka_config  # noqa: E402
from pipeline.kafka.io import committed_offsets, end_offsets  # noqa: E402
from pipeline.keys import Ed25519Signer  # noqa: E402
from pipeline.score.models import promote  # noqa: E402
from pipeline.score.step import score_records  # noqa: E402
from pipeline.settings import ClickHouseSettings, KafkaSettings, LocalSettings, ScoreSettings, Settings  # noqa: E402
from tests.integration.support import settings_env  # noqa: E402

PORT = 19392


def line(name: str, value: str) -> None:
    print(f"  {name:<48} {value}", flush=True)


def scored_so_far(s: Settings) -> int:
    return sum(max(0, o) for o in committed_offsets(s, s.kafka.score_app, s.kafka.chain_topic, 4).values())


def run_workers(s: Settings, base: Path, n: int, count: int, command: list[str], name: str) -> float | None:
    """Start `count` worker processes of one consumer group on the chain topic; events/s from the first
    committed batch until all n are committed (None if they stop making progress for a minute)."""
    group = f"{s.kafka.score_app}-{name}-{count}"
    s = s.model_copy(update={"kafka": s.kafka.model_copy(update={"score_app": group})})
    procs = []
    for i in range(count):
        (base / f"{group}-{i}").mkdir()
        env = {**settings_env(s), "AIAUDIT_LOCAL__STATE_DIR": str(base / f"{group}-{i}")}
        log = open(base / f"{group}-{i}.log", "wb")  # noqa: SIM115  # owned by the child
        procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        def alive() -> None:
            for i, p in enumerate(procs):
                if p.poll() is not None:
                    sys.exit(f"worker exited ({p.returncode}):\n{(base / f'{group}-{i}.log').read_text()[-3000:]}")

        # Scores go out one message per batch: count scored events from the group's committed offsets.
        while (first := scored_so_far(s)) == 0:
            alive()
            time.sleep(0.1)
        t = time.perf_counter()
        last, progress_at = first, time.monotonic()
        while (done := scored_so_far(s)) < n:
            alive()
            if done > last:
                last, progress_at = done, time.monotonic()
            elif time.monotonic() - progress_at > 60:
                print(f"  ({count} worker(s) stalled at {done:,} of {n:,}: see {base}/{group}-*.log)")
                return None
            time.sleep(0.2)
        return (done - first) / (time.perf_counter() - t)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def noop_worker() -> None:
    """A Faust app like the scoring worker (same consumer settings) whose agent only takes batches."""
    import faust

    from pipeline.score.app import make_app

    s = Settings()
    app = make_app(s, detector=None)  # type: ignore[arg-type]  # the agent below replaces the scorer
    chain = app.topic(s.kafka.chain_topic, key_serializer="raw", value_serializer="raw")
    app.agents.clear()

    @app.agent(chain)
    async def take(stream):  # type: ignore[no-untyped-def]  # a Faust stream: untyped upstream
        async for _batch in stream.take(s.score.batch_events, within=s.score.batch_within_s):
            pass

    faust.Worker(app, loglevel="WARN", quiet=True).execute_from_commandline()


def batch_consumer_rate(s: Settings, detector: Detector, n: int) -> float:
    """The pure scoring step fed by confluent-kafka batch consumption, one process, state in memory
    (no changelog): what a design without Faust's per-message machinery could reach here."""
    consumer = Consumer(kafka_config.client(s, **{"group.id": "bench-batch", "auto.offset.reset": "earliest",
                                          "enable.auto.commit": False, "isolation.level": "read_committed",
                                          "fetch.max.bytes": 64 * 1_048_576}))
    consumer.subscribe([s.kafka.chain_topic])
    states: dict[str, IdentityState] = {}
    done, t = 0, None
    while done < n:
        msgs = [m for m in consumer.consume(10_000, timeout=1.0) if not m.error()]
        if msgs and t is None:
            t = time.perf_counter()
        score_records([Record.from_wire(m.value()) for m in msgs], states, detector, detected_at_ms=0)
        done += len(msgs)
    consumer.close()
    return done / (time.perf_counter() - (t or time.perf_counter()))


def main() -> None:
    if "--noop-worker" in sys.argv:
        noop_worker()
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=2, help="also measure this many scoring worker processes")
    args = ap.parse_args()
    n, workers = args.events, args.workers
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
    try:
        ensure_topics(s)
        signer = Ed25519Signer.generate()
        producer = Producer(kafka_config.client(s, **{"linger.ms": 20, "acks": "all"}))
        heads = {}
        for i, ev in enumerate(events):
            ev = {**ev, "event_id": f"{i:032x}"}
            p = zlib.crc32(ev["actor"]["id"].encode()) % 4
            head = heads.get(p) or ChainHead.genesis(ChainId(f"bench/x/t/p{p}/g1"))
            rec = build_record(head, signer, ev["occurred_at"], Source("t", p, i), ev)
            heads[p] = rec.next_head(i)
            producer.produce(s.kafka.chain_topic, rec.to_wire(), key=rec.origin.encode(), partition=p)
            producer.poll(0)
        producer.flush(60)
        for count in sorted({1, workers}):
            rate = run_workers(s, base, n, count, [sys.executable, "-m", "pipeline.cli", "worker", "score"], "score")
            line(f"scored by {count} worker process(es)", f"{rate:,.0f} events/s" if rate else "stalled")
        alerts = sum(end_offsets(s, s.kafka.alerts_topic, 4).values())
        line("findings raised (all runs)", f"{alerts:,}")
        # The framework's own ceiling: the same topic through a Faust agent that does nothing.
        noop = s.model_copy(update={"kafka": s.kafka.model_copy(update={"score_app": "noop-bench"})})
        rate = run_workers(noop, base, n, 1, [sys.executable, __file__, "--noop-worker"], "noop")
        line("a Faust agent that does nothing (take batches)", f"{rate:,.0f} events/s" if rate else "stalled")
        line("the scoring step behind a confluent-kafka batch consumer", f"{batch_consumer_rate(s, detector, n):,.0f} events/s")
    finally:
        kafka.down()
        shutil.rmtree(base, ignore_errors=True)

    print("3. evaluation")
    print(table(*evaluate()))


if __name__ == "__main__":
    main()
