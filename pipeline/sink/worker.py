"""The sink worker (Kafka -> ClickHouse edge): batched inserts, offsets committed after.

Reads the chain, dead-letter, scores, alerts, incidents, policies and content topics with read_committed (so aborted chain
transactions never reach ClickHouse), inserts a batch of rows per table, then commits the
offsets. A crash between insert and commit redelivers the batch: the evidence table may then
hold exact duplicate rows, which every query and the verifier collapse (invariant 5).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer

from aiaudit.pipeline import metrics, names, store
from aiaudit.pipeline.collector import PacedCollector
from aiaudit.pipeline.errors import StoreError
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.kafka.io import InputLag, with_data
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.sink.rows import rows_of, sink_tables, sink_topics
from aiaudit.pipeline.store.access_log import AccessLog, AccessNotRecorded
from aiaudit.pipeline.store.api import ReadLimits, StoreServer

log = logging.getLogger("aiaudit.sink")


class SinkWorker:
    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client or store.connect(settings)
        self.inserter = store.Inserter(self.client)
        self.db = store.database(settings)
        # The sink batches for flush_interval_s anyway: let the broker batch the fetches too.
        self.consumer = Consumer(kafka_config.stage_consumer(settings, settings.kafka.sink_group, **{
            "fetch.min.bytes": 262144, "fetch.wait.max.ms": 500}))
        self.topics = sink_topics(settings.kafka)
        self.tables = sink_tables(settings.kafka)
        self.stats = {"rows": 0, "dead_letters": 0, "batches": 0}
        self.lag = InputLag("sink")
        self.pending: list[Any] = []

    def _insert(self, table: str, rows: list[list[Any]], columns: tuple[str, ...]) -> None:
        for attempt in range(6):
            try:
                self.inserter.insert(f"{self.db}.{table}", rows, columns)
                return
            except StoreError as exc:
                if attempt == 5:
                    raise
                log.warning("%s; retrying", exc)
                time.sleep(0.5 * 2**attempt)

    def flush(self) -> None:
        """Insert what is pending, then commit the consumed offsets."""
        if not self.pending:
            return
        started = time.perf_counter()
        rows = rows_of(self.pending, self.settings.kafka)
        for table, columns in self.tables.items():
            batch = rows.get(table)
            if batch:
                self._insert(table, batch, columns)
        self.consumer.commit(asynchronous=False)
        metrics.EVENTS_IN.labels("sink", "all").inc(len(self.pending))
        for table in self.tables:
            metrics.EVENTS_OUT.labels("sink", table).inc(len(rows.get(table)))
        metrics.BATCH_SECONDS.labels("sink", "all").observe(time.perf_counter() - started)
        self.pending = []
        self.stats["rows"] += len(rows.get(names.EVIDENCE_TABLE))
        self.stats["dead_letters"] += len(rows.get(names.DEAD_LETTER_TABLE))
        self.stats["batches"] += 1

    def run(self, stop: threading.Event, *, progress_every_s: float = 5.0, serve_reads: bool = False) -> None:
        """Sink until `stop` is set. With serve_reads (an embedded store, which admits one process),
        answer read queries of other processes on this machine meanwhile (pipeline/store/api.py)."""
        s = self.settings.sink
        server = None
        if serve_reads:  # a client of its own: reads never wait for (or hold up) the inserts
            limits = ReadLimits(s.api_max_rows, s.api_max_bytes, s.api_max_seconds)
            try:
                access, problem = AccessLog(self.settings), ""
            except AccessNotRecorded as exc:  # the sink still sinks; its store API refuses every read
                access, problem = None, str(exc)
                log.error("the store API refuses every read: %s", exc)
            server = StoreServer(store.connect(self.settings, apply_ddl=False), self.settings.local.state_dir, limits,
                                 access=access, access_problem=problem)
        if server is not None:
            self.settings.local.state_dir.mkdir(parents=True, exist_ok=True)
            server.start()
            log.info("serving reads of the embedded store to `aiaudit query|verify|export|alerts` on this machine")
        kafka_config.warn_if_unreachable(self.settings, self.consumer, "sink worker")
        # Flush before partitions move, so the next owner starts after what we inserted.
        self.consumer.subscribe([t.topic for t in self.topics], on_revoke=lambda c, p: self.flush())
        batch_started = time.monotonic()
        last_report, last_rows = time.monotonic(), 0
        # The cyclic collector paused within batches (pipeline/collector.py): with it on, the sink
        # spent ~30 us an event more (77 against 48-53 at 3,500/s; docs/benchmarks.md).
        with PacedCollector() as collector:
            try:
                while not stop.is_set():
                    want = s.max_batch_rows - len(self.pending)
                    msgs = self.consumer.consume(min(want, 1000), timeout=min(0.2, s.flush_interval_s))
                    for msg in with_data(msgs, self.settings, "sink worker"):
                        if not self.pending:
                            batch_started = time.monotonic()
                        self.pending.append(msg)
                    now = time.monotonic()
                    if self.pending and (len(self.pending) >= s.max_batch_rows or now - batch_started >= s.flush_interval_s):
                        self.flush()
                    self.lag.update(self.consumer)
                    collector.tick()
                    if now - last_report >= progress_every_s:
                        rate = (self.stats["rows"] - last_rows) / (now - last_report)
                        if self.stats["rows"] != last_rows:  # an idle worker stays quiet
                            log.info("sunk %d rows (%.0f/s), %d dead letters", self.stats["rows"], rate,
                                     self.stats["dead_letters"])
                        last_report, last_rows = now, self.stats["rows"]
                self.flush()
            finally:
                if server is not None:
                    server.close()
                self.consumer.close()
