"""Anomaly scoring throughput (prints figures; asserts nothing).

    python bench/score_bench.py [--events 100000] [--workers 2]

1. The pure step on one core: feature extraction, and IsolationForest scoring per batch size.
   The reference: the whole pure step (record parse, features, forest) in batches of 5,000, with
   the interpreter's defaults, and again with the cyclic collector paused as the worker runs it.
2. The scoring worker (confluent-kafka batch consumer, scores, findings, states and offsets in
   one transaction per batch) on a chain topic pre-filled with signed records: events/s with one
   and with --workers processes, per process and as a share of the pure step's rate.
3. The evaluation table (aiaudit.detectors.evaluate) at a 1% alert budget.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from aiaudit.detectors.evaluate import evaluate, table  # noqa: E402
from aiaudit.detectors.features import FeatureExtractor, IdentityState  # noqa: E402
from aiaudit.detectors.model import Detector, save, train  # noqa: E402
from aiaudit.detectors.traffic import labelled_traffic  # noqa: E402
from aiaudit.infra.kafka.broker import LocalKafka  # noqa: E402
from aiaudit.infra.topics import ensure_topics  # noqa: E402
from aiaudit.pipeline.chain.record import ChainHead, ChainId, Record, Source, build_record  # noqa: E402
from aiaudit.pipeline.kafka import config as kafka_config  # noqa: E402
from aiaudit.pipeline.kafka.io import committed_offsets, read_partitions  # noqa: E402
from aiaudit.pipeline.keys import Ed25519Signer, active_key_file, generate_key, load_signer  # noqa: E402
from aiaudit.pipeline.score.models import promote  # noqa: E402
from aiaudit.pipeline.score.step import score_records  # noqa: E402
from aiaudit.pipeline.settings import (  # noqa: E402
    ClickHouseSettings,
    KafkaSettings,
    LocalSettings,
    ScoreSettings,
    Settings,
    SigningSettings,
)
from tests.integration.support import settings_env  # noqa: E402

PORT = 19392


def line(name: str, value: str) -> None:
    print(f"  {name:<48} {value}", flush=True)


def scored_so_far(s: Settings) -> int:
    k = s.kafka
    return sum(max(0, o) for o in committed_offsets(s, k.score_app, k.chain_topic, k.partitions).values())


def chained_backlog(events: list[dict[str, Any]], partitions: int) -> tuple[list[tuple[int, bytes]], list[Record]]:
    """The events as signed records of one chain per partition (an identity's events in one partition,
    as the emitter's key hashing puts them): (partition, wire bytes) in order, and the records."""
    signer = Ed25519Signer.generate()
    heads: dict[int, ChainHead] = {}
    wire: list[tuple[int, bytes]] = []
    records: list[Record] = []
    for i, ev in enumerate(events):
        ev = {**ev, "event_id": f"{i:032x}"}
        p = zlib.crc32(ev["actor"]["id"].encode()) % partitions
        head = heads.get(p) or ChainHead.genesis(ChainId(f"bench/x/t/p{p}/g1"))
        rec = build_record(head, signer, ev["occurred_at"], Source("t", p, i), ev)
        heads[p] = rec.next_head(i)
        wire.append((p, rec.to_wire()))
        records.append(rec)
    return wire, records


def fill_chain_topic(s: Settings, wire: list[tuple[int, bytes]]) -> None:
    # Idempotent: retries keep each partition in order, as the chain worker writes it.
    producer = Producer(kafka_config.client(s, **{"linger.ms": 20, "acks": "all", "enable.idempotence": True}))
    for p, value in wire:
        while True:
            try:
                producer.produce(s.kafka.chain_topic, value, partition=p)
                break
            except BufferError:  # librdkafka's queue is full: wait for acknowledgements
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(60)


def run_workers(s: Settings, base: Path, n: int, count: int, command: list[str], name: str
                ) -> tuple[float, int, int] | None:
    """Start `count` worker processes of one consumer group on the chain topic and wait until all n
    are committed (None if they stop making progress for a minute). events/s from the scores
    messages' own timestamps (written as each batch is scored): the rows after the first batch over
    the time from the first batch to the last, so neither start-up nor this bench's polling counts."""
    group = f"{s.kafka.score_app}-{name}-{count}"
    # A group, a state topic and a scores topic of its own: states another run left would be read as
    # this run's past, and its scores counted as this run's.
    s = s.model_copy(update={"kafka": s.kafka.model_copy(update={
        "score_app": group, "score_state_topic": f"{s.kafka.score_state_topic}.{name}-{count}",
        "scores_topic": f"{s.kafka.scores_topic}.{name}-{count}", "alerts_topic": f"{s.kafka.alerts_topic}.{name}-{count}"})})
    ensure_topics(s)
    procs = []
    for i in range(count):
        (base / f"{group}-{i}").mkdir()
        env = {**settings_env(s), "AIAUDIT_LOCAL__STATE_DIR": str(base / f"{group}-{i}")}
        log = open(base / f"{group}-{i}.log", "wb")  # noqa: SIM115  # owned by the child
        procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        last, progress_at = 0, time.monotonic()
        while (done := scored_so_far(s)) < n:
            for i, p in enumerate(procs):
                if p.poll() is not None:
                    sys.exit(f"worker exited ({p.returncode}):\n{(base / f'{group}-{i}.log').read_text()[-3000:]}")
            if done > last:
                last, progress_at = done, time.monotonic()
            elif time.monotonic() - progress_at > 60:
                print(f"  ({count} worker(s) stalled at {done:,} of {n:,}: see {base}/{group}-*.log)")
                return None
            time.sleep(1.0)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    batches = sorted((m.timestamp()[1], len(orjson.loads(m.value())))
                     for m in read_partitions(s, s.kafka.scores_topic, list(range(s.kafka.partitions))))
    first_ms, last_ms = batches[0][0], batches[-1][0]
    after_first = sum(rows for ms, rows in batches if ms > first_ms)
    uids = [orjson.loads(m.value())["finding_info"]["uid"]
            for m in read_partitions(s, s.kafka.alerts_topic, list(range(s.kafka.partitions)))]
    return after_first / max(0.001, (last_ms - first_ms) / 1000), len(uids), len(set(uids))


def pure_step_rate(records: list[Record], detector: Detector, batch: int = 5000, *, collector: bool = True) -> float:
    """The reference: the pure step (payload parse, features, forest) over the records in batches,
    state in memory, one core. The worker's figure is held against this, measured in the same run.
    collector=False: with the cyclic garbage collector paused, as the worker runs the step."""
    states: dict[str, IdentityState] = {}
    # The bench's own data (every record and event of the run) is long-lived: out of the cyclic
    # collector's way, as a worker's restored states are (the worker freezes them too), so the
    # reference does not pay for traversing what the worker never holds.
    gc.collect()
    gc.freeze()
    if not collector:
        gc.disable()
    try:
        t = time.perf_counter()
        for i in range(0, len(records), batch):
            score_records(records[i:i + batch], states, detector, detected_at_ms=0)
        return len(records) / (time.perf_counter() - t)
    finally:
        gc.enable()
        gc.unfreeze()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2, help="also measure this many scoring worker processes")
    ap.add_argument("--batch-events", type=int, default=ScoreSettings().batch_events,
                    help="the workers' AIAUDIT_SCORE__BATCH_EVENTS (default: the setting's default)")
    args = ap.parse_args()
    n, workers = args.events, args.workers
    train_events, test = labelled_traffic(7)
    fx = FeatureExtractor()
    X_train = np.array([fx(e) for e in train_events])
    detector = train(X_train, version="bench", seed=7)
    # A stream of distinct, time-ordered normal traffic long enough for n events.
    stream, _ = labelled_traffic(8, train_days=max(2, n // 4000 + 1), test_days=1)
    events = stream[:n]
    n = len(events)

    wire, records = chained_backlog(events, 4)

    print(f"1. pure step, one core ({n:,} chained events)")
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
    read = [Record.from_wire(w) for _, w in wire]
    pure = pure_step_rate(read, detector)
    line("the pure step (parse + features + forest), batches of 5,000", f"{pure:,.0f} events/s")
    paused = pure_step_rate(read, detector, collector=False)
    line("  the same with the cyclic collector paused (as the worker)", f"{paused:,.0f} events/s")
    del read

    print("2. scoring worker (batch consumer, a transaction per batch) on a pre-filled chain topic")
    base = Path(".aiaudit/score-bench").resolve()
    shutil.rmtree(base, ignore_errors=True)
    keys = base / "keys"
    generate_key(keys)
    s = Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{PORT}", partitions=4),
                 signing=SigningSettings(keys_dir=keys),
                 clickhouse=ClickHouseSettings(dsn=SecretStr(f"chdb://{base / 'chdb'}")),
                 score=ScoreSettings(models_dir=base / "models", batch_events=args.batch_events, batch_within_s=0.5),
                 local=LocalSettings(state_dir=base, kafka_port=PORT, controller_port=PORT + 1))
    save(detector, s.score.models_dir)
    promote(s.score.models_dir, "bench", load_signer(active_key_file(keys, None)), by="bench")
    kafka = LocalKafka(s)
    kafka.up()
    try:
        ensure_topics(s)
        fill_chain_topic(s, wire)
        expected = sum(1 for r in score_records(records, {}, detector, detected_at_ms=0) if r.finding)
        for count in sorted({1, workers}):
            run = run_workers(s, base, n, count, [sys.executable, "-m", "aiaudit.pipeline.cli", "worker", "score"], "score")
            if run is None:
                line(f"scored by {count} worker process(es)", "stalled")
                continue
            rate, raised, distinct = run
            line(f"scored by {count} worker process(es)", f"{rate:,.0f} events/s = {rate / count:,.0f} per process, "
                 f"{rate / count / pure:.0%} of the pure step's rate ({rate / count / paused:.0%} with its collector paused)")
            line("", f"findings {raised:,} ({distinct:,} distinct; the pure step raises {expected:,})")
    finally:
        kafka.down()
        shutil.rmtree(base, ignore_errors=True)

    print("3. evaluation (tuning family, then the held-out family)")
    print("\n\n".join(table(report) for report in evaluate()))


if __name__ == "__main__":
    main()
