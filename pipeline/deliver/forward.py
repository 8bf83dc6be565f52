"""Request events pushed to a SIEM (`send: requests` destinations), inside the delivery agent's
process: one batch consumer per destination on the chain topic (read_committed: only records the
chain worker committed), apart from the Faust agents, which are for findings' low volume (the
architecture's rule: hot paths are confluent-kafka batch consumers).

The same guarantees as findings, per batch: retries with the destination's backoff, a dead letter
after its last attempt, a delivery record for every attempt (chained evidence, like a finding's),
and nothing acknowledged before its outcome: a batch's offsets are committed only after it was
delivered or dead-lettered and its records are on the broker, so a killed agent re-sends what it
had not finished (each event carries its event id for the SIEM to drop a repeat). A destination
that is down holds only its own consumer: each has its own group (`<deliver_app>-requests-<name>`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections import defaultdict
from typing import Any

import aiohttp
import orjson
from confluent_kafka import Consumer, KafkaError, Producer

from aiaudit.pipeline import metrics
from aiaudit.pipeline.chain.record import Record
from aiaudit.pipeline.deliver.policy import DeliveryRecord, after_attempt
from aiaudit.pipeline.deliver.request_events import (
    batch_label,
    batch_uid,
    hec_body,
    syslog_request,
    webhook_batch,
)
from aiaudit.pipeline.deliver.send import Target, write_syslog
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.kafka.io import InputLag
from aiaudit.pipeline.query.ocsf import api_activity
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import evidence

log = logging.getLogger("aiaudit.deliver.requests")


class Stopping(Exception):
    """The agent is stopping: the batch in work is not acknowledged (re-sent after the restart)."""


class RequestForwarder:
    def __init__(self, settings: Settings, target: Target, stop: threading.Event, product_version: str) -> None:
        self.settings, self.target, self.stop, self.product_version = settings, target, stop, product_version
        self.group = f"{settings.kafka.deliver_app}-requests-{target.destination.name}"
        self.thread = threading.Thread(target=self._run, name=f"aiaudit-requests-{target.destination.name}",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # noqa: BLE001  # logged; the agent's process stops, so that a restart replays it
            log.exception("request events to %s: the forwarder failed; the delivery agent stops",
                          self.target.destination.name)
            self.stop.set()
            os.kill(os.getpid(), signal.SIGTERM)

    async def _main(self) -> None:
        k = self.settings.kafka
        consumer = Consumer(kafka_config.stage_consumer(self.settings, self.group))
        producer = Producer(kafka_config.producer(self.settings))
        lag = InputLag(f"deliver-requests-{self.target.destination.name}")
        consumer.subscribe([k.chain_topic])
        log.info("request events from %s to %s (%s)", k.chain_topic, self.target.destination.name,
                 self.target.destination.kind)
        try:
            async with aiohttp.ClientSession() as http:
                while not self.stop.is_set():
                    messages = consumer.consume(self.settings.deliver.request_batch, timeout=0.5)
                    lag.update(consumer)
                    batches: dict[int, list[Any]] = defaultdict(list)
                    for m in messages:
                        err = m.error()
                        if err is not None:
                            if err.code() != KafkaError._PARTITION_EOF:
                                log.warning("%s", kafka_config.consumer_problem(self.settings, "request events", err))
                            continue
                        batches[int(m.partition() or 0)].append(m)
                    if not batches:
                        continue
                    for partition, batch in sorted(batches.items()):
                        await self._deliver(http, producer, partition, batch)
                    if producer.flush(30):
                        raise RuntimeError("the broker did not take the delivery records within 30 s")
                    consumer.commit(asynchronous=False)
        except Stopping:
            log.info("request events to %s: stopping with a batch in work (re-sent after the restart)",
                     self.target.destination.name)
        finally:
            producer.flush(10)
            consumer.close()

    def _events(self, batch: list[Any]) -> tuple[list[dict[str, Any]], str, int, int]:
        rows = [dict(zip(evidence.COLUMNS, evidence.row(Record.from_wire(m.value())), strict=True)) for m in batch]
        routes = self.target.destination.routes
        events = [api_activity(r, product_version=self.product_version) for r in rows
                  if routes is None or orjson.loads(r["payload"])["event"].get("route") in routes]
        return events, rows[0]["origin"], int(rows[0]["seq"]), int(rows[-1]["seq"])

    async def _deliver(self, http: aiohttp.ClientSession, producer: Producer, partition: int, batch: list[Any]) -> None:
        events, origin, first, last = self._events(batch)
        if not events:
            return
        dest = self.target.destination
        uid = batch_uid(dest.name, origin, first, last)
        label = batch_label(origin, first, last)
        span = {"origin": origin, "partition": partition, "first_seq": first, "last_seq": last, "count": len(events)}
        attempt = 1
        while True:
            rec = await self._send(http, events, uid, label, attempt, span)
            rec.detail.update({"requests": span})
            state, delay = after_attempt(dest, uid, rec.outcome, attempt)
            if state == "retrying":
                rec.detail["retry_in_s"] = round(delay or 0, 3)
            elif state == "dead_lettered":
                rec.outcome = "dead_lettered"
                producer.produce(self.settings.kafka.delivery_dlq_topic, key=uid.encode(), value=orjson.dumps(
                    {"delivery": rec.message(), "requests": span}))
            producer.produce(self.settings.kafka.deliveries_topic, key=uid.encode(), value=orjson.dumps(rec.message()))
            producer.poll(0)
            metrics.DELIVERIES.labels(metrics.outcome_label(rec.outcome)).inc()
            log.info("%s %s -> %s: %s (attempt %d, %d events)", rec.outcome, label, dest.name, rec.status, attempt,
                     len(events))
            if state != "retrying":
                return
            deadline = time.monotonic() + (delay or 0)
            while time.monotonic() < deadline:
                if self.stop.is_set():
                    raise Stopping
                await asyncio.sleep(min(0.2, deadline - time.monotonic()))
            attempt += 1

    async def _send(self, http: aiohttp.ClientSession, events: list[dict[str, Any]], uid: str, label: str,
                    attempt: int, span: dict[str, Any]) -> DeliveryRecord:
        target, dest, now = self.target, self.target.destination, time.time()

        def record(outcome: Any, status: str, response: str) -> DeliveryRecord:
            return DeliveryRecord(uid, label, dest.name, outcome, attempt, now, status, response)

        try:
            if dest.kind == "syslog":
                await write_syslog(target, [syslog_request(e, hostname=target.hostname) for e in events], dest.timeout_s)
                return record("delivered", "sent", f"{len(events)} messages written over "
                              f"{'TLS' if target.tls else 'TCP'} (syslog has no acknowledgement)")
            if dest.kind == "webhook":
                body, headers = webhook_batch(events, target.secret, uid, now, origin=span["origin"],
                                              first_seq=span["first_seq"], last_seq=span["last_seq"])
            else:
                body, headers = hec_body(events, host=target.hostname), {
                    "Authorization": "Splunk " + target.secret.decode("ascii"), "Content-Type": "application/json"}
            async with http.post(target.url, data=body, headers=headers, allow_redirects=False,
                                 timeout=aiohttp.ClientTimeout(total=dest.timeout_s)) as resp:
                text = (await resp.content.read(2000)).decode("utf-8", "replace")
                return record("delivered" if 200 <= resp.status < 300 else "failed", str(resp.status), text)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            return record("failed", f"error: {type(exc).__name__}", str(exc)[:500])
