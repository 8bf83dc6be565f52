"""The gateway's evidence edge: events through the emitter SDK, policy bundles, content keys.

Events are handed to the emitter's bounded queue and acknowledged by the broker in the
background (a poll thread serves delivery reports), so the broker's round trip is not on the
caller's path. Whether evidence *can* be recorded is tracked from what the client sees:

- librdkafka reports every broker down (error callback), cleared when its statistics show a
  broker up again or a delivery succeeds;
- the oldest event handed over and not yet acknowledged is older than `max_unacked_s`.

Fail-closed routes refuse requests while either holds, and refuse to return an answer whose
event could not be handed over. Fail-open routes answer anyway; their events wait in the
bounded queue and are delivered when the broker is back (`lost` counts any that could not be
queued at all).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import KafkaError, Producer

from aiaudit.pipeline import metrics
from aiaudit.pipeline.contract.emitter_keys import emitter_name
from aiaudit.pipeline.contract.subject_keys import Sealing, SubjectKeys
from aiaudit.pipeline.emit.producer import Delivery, Emitter
from aiaudit.pipeline.errors import AiAuditError, DeliveryFailed
from aiaudit.pipeline.gateway.event import content_message
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.settings import Settings

log = logging.getLogger("aiaudit.gateway")


class Evidence:
    def __init__(self, settings: Settings, gateway_id: str, *, max_unacked_s: float) -> None:
        self.settings = settings
        self.max_unacked_s = max_unacked_s
        self._unacked: dict[str, float] = {}  # event_id -> when handed over; insertion order = age order
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self.delivered = 0
        self.failed = 0
        self.lost = 0
        # One emitter per process: emitter_seq counts this replica's events from 0 (invariant 4).
        # Its events are signed with this replica's emitter key (settings.emitter.key_file), and the
        # emitter id starts with the key's name: `<name>-<gateway id>-<12 hex>`.
        key_file = settings.emitter.key_file if settings.emitter.sign else None
        name = emitter_name(key_file) if key_file is not None else "gateway"
        self.emitter = Emitter(settings, emitter_id=f"{name}-{gateway_id}-{uuid.uuid4().hex[:12]}",
                               on_delivery=self._delivered, on_error=self._error,
                               extra_config={"statistics.interval.ms": 1000, "stats_cb": self._stats})
        signer = self.emitter.signer_kid
        log.info("events from emitter %s, %s", self.emitter.emitter_id,
                 f"signed with emitter key {signer}" if signer else "UNSIGNED (emitter.sign=false)")
        self._side = Producer(kafka_config.producer(settings, **{"linger.ms": 20, "error_cb": self._error}))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="evidence-poll", daemon=True)
        self._poller.start()

    # -- background -------------------------------------------------------------------------
    def _poll(self) -> None:
        while not self._stop.is_set():
            self.emitter.poll(0.05)
            self._side.poll(0)

    def _delivered(self, d: Delivery) -> None:
        with self._lock:
            self._unacked.pop(d.event_id, None)
            if d.error is None:
                self.delivered += 1
                self._down_since = None
            else:
                self.failed += 1
                log.error("event %s (seq %d) was not recorded: %s", d.event_id, d.emitter_seq, d.error)

    def _error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            with self._lock:
                if err.code() == KafkaError._ALL_BROKERS_DOWN and self._down_since is None:
                    self._down_since = time.monotonic()
            log.warning("evidence broker at %s: %s", self.settings.kafka.bootstrap_servers, err.str())
        else:
            log.error("evidence producer: %s", err.str())

    def _stats(self, text: str) -> None:
        brokers = orjson.loads(text).get("brokers", {})
        if any(b.get("state") == "UP" for b in brokers.values()):
            with self._lock:
                self._down_since = None

    # -- request path -----------------------------------------------------------------------
    def available(self) -> str | None:
        """None when events can be recorded; otherwise why not."""
        with self._lock:
            if self._down_since is not None:
                return f"the evidence broker at {self.settings.kafka.bootstrap_servers} is unreachable"
            if self._unacked:
                age = time.monotonic() - next(iter(self._unacked.values()))
                if age > self.max_unacked_s:
                    return f"an event has waited {age:.1f}s for the evidence broker"
        return None

    def emit(self, event: dict[str, Any]) -> None:
        """Hand one event over without waiting for the broker. Raises InvalidEvent, OversizedEvent
        (a bug: the gateway built it) or DeliveryFailed (the bounded queue is full)."""
        with self._lock:
            self._unacked[event["event_id"]] = time.monotonic()
        try:
            self.emitter.emit(event, timeout_s=0)
        except Exception:
            with self._lock:
                self._unacked.pop(event["event_id"], None)
            raise

    def count_lost(self) -> None:
        """One event or content not recorded (the request path and the content keeper's thread both count)."""
        with self._lock:
            self.lost += 1

    def keep_content(self, message: dict[str, Any]) -> None:
        """Content key (and content, for `full` routes) to the content topic, keyed by event id."""
        try:
            self._side.produce(self.settings.kafka.content_topic, orjson.dumps(message), key=message["event_id"].encode())
        except BufferError:
            self.count_lost()
            log.error("content for event %s dropped: the producer queue is full", message["event_id"])

    def flush_content(self, timeout_s: float) -> int:
        """Wait for the content producer's messages to be acknowledged; the number left."""
        return int(self._side.flush(timeout_s))

    def publish_policy(self, message: dict[str, Any], *, timeout_s: float = 15.0) -> None:
        """Publish a loaded policy bundle and wait for the broker: a bundle that governs requests must
        be fetchable. Raises DeliveryFailed when the broker does not acknowledge it."""
        result: list[KafkaError | None] = []
        self._side.produce(self.settings.kafka.policies_topic, orjson.dumps(message),
                           key=message["policy_version"].encode(), on_delivery=lambda err, _msg: result.append(err))
        deadline = time.monotonic() + timeout_s
        while not result and time.monotonic() < deadline:
            self._side.flush(0.1)
        if not result or result[0] is not None:
            why = result[0].str() if result and result[0] is not None else f"no acknowledgement after {timeout_s}s"
            raise DeliveryFailed(f"policy {message['policy_version']} could not be published: {why}")

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver what is queued, then stop the poll thread."""
        self._side.flush(timeout_s)
        left = self.emitter.drain(timeout_s)
        self._stop.set()
        self._poller.join(5)
        if left:
            log.error("%d events were not acknowledged before shutdown", left)


@dataclass(frozen=True)
class KeepJob:
    """What one request keeps: its content (or commitment key), whom it is about, until when."""

    event_id: str
    subjects: tuple[str, ...]
    expires_at: str
    retention_scope: str
    content: dict[str, Any]


LINGER_S = 0.02  # the keeper waits this long after a job before sealing its batch


class ContentKeeper:
    """Seals kept content and hands it to the content topic, off the request path.

    Sealing makes a key file for each record (and for each new subject), and a key must be on disk
    before anything sealed under it leaves: one fsync a request, measured at ~3.5 ms here, held the
    event loop (the gateway answered ~290 requests/s at 20 clients, and added 4 ms to each). A
    thread takes what is queued instead, writes the batch's key files, makes them durable together
    (the file system commits them in one journal transaction), and only then produces each message.
    What a crash loses is what it lost before: content not yet handed to the broker (never the event,
    which is emitted first, on the request path). A full queue drops the content, counted and logged,
    as a full producer queue did."""

    def __init__(self, keys: SubjectKeys, evidence: "Evidence", *, max_queued: int = 10_000, batch: int = 512,
                 linger_s: float = LINGER_S) -> None:
        self.keys, self.evidence, self.batch, self.linger_s = keys, evidence, batch, linger_s
        self._queue: queue.Queue[KeepJob | None] = queue.Queue(maxsize=max_queued)
        self._idle = threading.Condition()
        self._submitted = self._handled = 0  # jobs queued; jobs kept, or counted lost
        self._thread = threading.Thread(target=self._run, name="content-keeper", daemon=True)
        self._thread.start()

    def submit(self, job: KeepJob) -> None:
        with self._idle:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                full = True
            else:
                full, self._submitted = False, self._submitted + 1
        if full:
            self._lost(job.event_id, "the content queue is full")

    def _lost(self, event_id: str, why: str) -> None:
        self.evidence.count_lost()
        metrics.GATEWAY_UNRECORDED.labels("content").inc()
        log.error("content of event %s not kept: %s", event_id, why)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is not None and self.linger_s:
                time.sleep(self.linger_s)  # let the request that queued it finish first, and more jobs come
            jobs = [first]
            while len(jobs) < self.batch:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            kept = [j for j in jobs if j is not None]
            try:
                self._keep(kept)
            except Exception as exc:  # noqa: BLE001  # a bug must not stop the thread: what it held is counted lost
                log.exception("content keeper")
                for job in kept:
                    self._lost(job.event_id, f"{type(exc).__name__} while keeping it")
            finally:
                with self._idle:
                    self._handled += len(kept)
                    self._idle.notify_all()
            if None in jobs:
                return

    def _keep(self, jobs: list[KeepJob]) -> None:
        messages = []
        try:
            with self.keys.batch() as batch:  # the batch's new keys made durable together on leaving
                done = self.keys.seal_many([Sealing(j.event_id, j.subjects, j.expires_at, j.content) for j in jobs], batch)
        except (OSError, AiAuditError) as exc:  # the batch not committed: none of its keys made
            for job in jobs:
                self._lost(job.event_id, f"its keys could not be made ({exc})")
            return
        for job, result in zip(jobs, done):
            if isinstance(result, Exception):
                self._lost(job.event_id, f"its keys cannot be made ({result})")
                continue
            sealed, key_ids = result
            messages.append(content_message(event_id=job.event_id, retention_scope=job.retention_scope,
                                            expires_at=job.expires_at, subjects=job.subjects, key_ids=key_ids,
                                            sealed=sealed))
        for message in messages:
            self.evidence.keep_content(message)

    def drain(self, timeout_s: float) -> int:
        """Wait until every job submitted is kept (or counted lost) and the content producer has
        delivered what it holds; the number of jobs and messages left (0: all)."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._submitted > self._handled:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._idle.wait(left)
            left_jobs = self._submitted - self._handled
        return left_jobs + self.evidence.flush_content(max(0.0, deadline - time.monotonic()))

    def close(self, timeout_s: float = 30.0) -> int:
        """Keep what is queued, then stop the thread. The number of jobs left undone."""
        left = self.drain(timeout_s)
        try:
            self._queue.put(None, timeout=max(0.1, timeout_s))
        except queue.Full:
            return left
        self._thread.join(timeout_s)
        return left
