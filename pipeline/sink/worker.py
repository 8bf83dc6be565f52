"""The sink worker (Kafka -> ClickHouse edge): batched inserts, offsets committed after.

Reads the chain, dead-letter, scores, alerts, policies and content topics with read_committed (so aborted chain
transactions never reach ClickHouse), inserts a batch of rows per table, then commits the
offsets. A crash between insert and commit redelivers the batch: the evidence table may then
hold exact duplicate rows, which every query and the verifier collapse (invariant 5).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from confluent_kafka import Consumer

from pipeline import names, store
from pipeline.chain.record import Record
from pipeline.errors import InfraError, StoreError
from pipeline.settings import KafkaSettings, Settings
from pipeline.sink.rows import (ALERT_COLUMNS, CONTENT_COLUMNS, DEAD_LETTER_COLUMNS, EVIDENCE_COLUMNS, POLICY_COLUMNS,
                                SCORE_COLUMNS, alert_row, content_row, dead_letter_row, evidence_row, parse_src,
                                policy_row, score_row)

log = logging.getLogger("aiaudit.sink")


def _header(headers: list[tuple[str, bytes]] | None, name: str) -> str:
    for key, value in headers or []:
        if key == name:
            return value.decode("utf-8", "replace")
    return ""


@dataclass
class Rows:
    evidence: list[list[Any]] = field(default_factory=list)
    dead: list[list[Any]] = field(default_factory=list)
    scores: list[list[Any]] = field(default_factory=list)
    alerts: list[list[Any]] = field(default_factory=list)
    policies: list[list[Any]] = field(default_factory=list)
    content: list[list[Any]] = field(default_factory=list)


def rows_of(messages: list[Any], k: KafkaSettings) -> Rows:
    """Sort consumed messages into table rows. Nothing unreadable is dropped: it becomes a dead letter."""
    out = Rows()
    for msg in messages:
        value = msg.value() or b""
        topic = msg.topic()
        try:
            if topic == k.chain_topic:
                out.evidence.append(evidence_row(Record.from_wire(value)))
            elif topic == k.scores_topic:
                out.scores.extend(score_row(row) for row in orjson.loads(value))  # one array per scored batch
            elif topic == k.alerts_topic:
                out.alerts.append(alert_row(orjson.loads(value), value))
            elif topic == k.policies_topic:
                out.policies.append(policy_row(orjson.loads(value)))
            elif topic == k.content_topic:
                out.content.append(content_row(orjson.loads(value)))
            else:
                src = parse_src(_header(msg.headers(), names.HDR_SRC), (topic, msg.partition(), msg.offset()))
                out.dead.append(dead_letter_row(*src, _header(msg.headers(), names.HDR_REASON) or "unknown",
                                                _header(msg.headers(), names.HDR_DETAIL), value))
        except (ValueError, KeyError, TypeError) as exc:
            # Not a message we wrote: keep it whole rather than drop it.
            out.dead.append(dead_letter_row(topic, msg.partition(), msg.offset(), f"bad_{topic}_message", str(exc)[:500], value))
    return out


class SinkWorker:
    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client or store.connect(settings)
        self.db = store.database(settings)
        k = settings.kafka
        self.consumer = Consumer(settings.kafka_config(**{
            "group.id": k.sink_group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "session.timeout.ms": k.session_timeout_ms,
            "fetch.message.max.bytes": settings.chain.max_event_bytes * 8,
            # The sink batches for flush_interval_s anyway: let the broker batch the fetches too.
            "fetch.min.bytes": 262144, "fetch.wait.max.ms": 200,
        }))
        self.stats = {"rows": 0, "dead_letters": 0, "batches": 0}
        self.pending: list[Any] = []

    def _insert(self, table: str, rows: list[list[Any]], columns: tuple[str, ...]) -> None:
        for attempt in range(6):
            try:
                self.client.insert(f"{self.db}.{table}", rows, column_names=list(columns))
                return
            except ClickHouseError as exc:
                if attempt == 5:
                    raise StoreError(f"inserting {len(rows)} rows into {table} failed: {exc}") from exc
                log.warning("insert into %s failed (%s); retrying", table, exc)
                time.sleep(0.5 * 2**attempt)

    def flush(self) -> None:
        """Insert what is pending, then commit the consumed offsets."""
        if not self.pending:
            return
        rows = rows_of(self.pending, self.settings.kafka)
        for table, batch, columns in ((names.EVIDENCE_TABLE, rows.evidence, EVIDENCE_COLUMNS),
                                      (names.DEAD_LETTER_TABLE, rows.dead, DEAD_LETTER_COLUMNS),
                                      (names.SCORES_TABLE, rows.scores, SCORE_COLUMNS),
                                      (names.ALERTS_TABLE, rows.alerts, ALERT_COLUMNS),
                                      (names.POLICIES_TABLE, rows.policies, POLICY_COLUMNS),
                                      (names.CONTENT_TABLE, rows.content, CONTENT_COLUMNS)):
            if batch:
                self._insert(table, batch, columns)
        self.consumer.commit(asynchronous=False)
        self.pending = []
        self.stats["rows"] += len(rows.evidence)
        self.stats["dead_letters"] += len(rows.dead)
        self.stats["batches"] += 1

    def run(self, stop: threading.Event, *, progress_every_s: float = 5.0) -> None:
        k, s = self.settings.kafka, self.settings.sink
        # Flush before partitions move, so the next owner starts after what we inserted.
        self.consumer.subscribe([k.chain_topic, k.dead_letter_topic, k.scores_topic, k.alerts_topic, k.policies_topic,
                                 k.content_topic],
                                on_revoke=lambda c, p: self.flush())
        batch_started = time.monotonic()
        last_report, last_rows = time.monotonic(), 0
        try:
            while not stop.is_set():
                want = s.max_batch_rows - len(self.pending)
                for msg in self.consumer.consume(min(want, 1000), timeout=min(0.2, s.flush_interval_s)):
                    if msg.error():
                        if msg.error().fatal():
                            raise InfraError(f"sink consumer: {msg.error()}")
                        log.warning("sink consumer: %s", msg.error())
                        continue
                    if not self.pending:
                        batch_started = time.monotonic()
                    self.pending.append(msg)
                now = time.monotonic()
                if self.pending and (len(self.pending) >= s.max_batch_rows or now - batch_started >= s.flush_interval_s):
                    self.flush()
                if now - last_report >= progress_every_s:
                    rate = (self.stats["rows"] - last_rows) / (now - last_report)
                    log.info("sunk %d rows (%.0f/s), %d dead letters", self.stats["rows"], rate, self.stats["dead_letters"])
                    last_report, last_rows = now, self.stats["rows"]
            self.flush()
        finally:
            self.consumer.close()
