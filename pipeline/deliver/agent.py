"""The delivery agent (Faust): alerts topic -> destinations, with suppression, retries, a dead
letter and a delivery record for every outcome.

Two agents share two tables, all partitioned like the alerts topic (a finding's table entries
live in its alert's partition; retries are sent to that same partition):

- `deliver` reads findings (read_committed: the scorer writes them in transactions) and, per
  destination that accepts one, suppresses it (an identity's detector already delivered inside
  the window, by the findings' own times) or sends it;
- `retry` reads the retries the first one scheduled, waits until each is due and tries again;
  after the destination's last attempt the delivery goes to the dead-letter topic, finding whole
  (and the alert's partition), from where `aiaudit alerts redeliver` re-drives it (redrive.py).

What makes a restart safe (Faust is at least once: after kill -9 it replays from the last
committed offset, and its recovery can hand a worker records twice; faust_app.py closes the
recovery race that lost records on a restart):

- every delivery has a stable uid (destination + finding), on every attempt and every replay;
- its state lives in the `deliveries` table, and "sending" is written and flushed to the
  changelog *before* anything leaves, so a replay skips what is done or scheduled and re-sends
  only a delivery whose outcome was never written (at most the deliveries in flight at the kill),
  under the same uid, marked `in_doubt` in its record: a webhook or HEC receiver drops it by the
  `X-Aiaudit-Delivery` id; syslog and chat have no such id and can show it twice;
- suppression (`suppression` table) counts from the decision to send, written with that mark.

No destination waits for another: each finding's (and each retry's) work runs in a task of its
own, and each destination has a lane of `in_flight` attempts, so a receiver that never answers
holds only its own lane, for its own `timeout_s`. Acks are manual and in offset order
(acks.py): an alerts or retries message is acknowledged when its work and that of every message
before it is done, so Faust commits only up to the oldest one still outstanding, so a kill -9 replays whatever was in flight (including an attempt still waiting for
its lane, which then counts as in doubt). At most MAX_OUTSTANDING messages are in work at once;
the agent reads on only as work finishes.

Delivery records go to the deliveries topic (the sink stores them; `aiaudit alerts history`
shows them next to the alert's status). Standby replicas are off (one worker is the expected
deployment; a second takes over after a rebalance by recovering the tables).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import faust
import orjson

from aiaudit.detectors.incidents import INCIDENT_CLASS_UID
from aiaudit.pipeline import metrics
from aiaudit.pipeline.deliver.acks import InOrderAcks
from aiaudit.pipeline.deliver.faust_app import App
from aiaudit.pipeline.deliver.formats import Unreadable, parse_finding, uid_of
from aiaudit.pipeline.deliver.pages import decide, digest_delivered, digest_finding, roll_day
from aiaudit.pipeline.deliver.policy import (
    DeliveryRecord,
    Destination,
    Step,
    after_attempt,
    delivery_uid,
    first_step,
    retry_after,
    retry_step,
    suppression_keys,
)
from aiaudit.pipeline.deliver.send import Target, send
from aiaudit.pipeline.logs import dict_config
from aiaudit.pipeline.score.finding_signature import from_headers, signature_problem
from aiaudit.pipeline.settings import Settings

log = logging.getLogger("aiaudit.deliver")
PAGER = Destination("pager", "webhook")  # names the pager's own records (held back by the budget)
MAX_OUTSTANDING = 512  # alerts and retries messages in work at once (each holds one finding)
DIGEST_CLOCK_S = 60.0  # how often the digest clock looks for a day that is over


def make_app(settings: Settings, targets: list[Target], finding_keys: Sequence[bytes]) -> faust.App:
    k = settings.kafka
    app = App(
        k.deliver_app, broker=[f"kafka://{b}" for b in k.bootstrap_servers.split(",")], store="memory://",
        topic_partitions=k.partitions, topic_replication_factor=1, web_enabled=False,
        datadir=str(settings.local.state_dir / "faust-deliver"), broker_session_timeout=k.session_timeout_ms / 1000,
        consumer_auto_offset_reset="earliest", producer_acks=-1, table_standby_replicas=0,
        broker_commit_interval=1.0,
        # A rebalance or a stop does not wait for deliveries in flight (a retry can wait minutes for
        # its time): what is not acknowledged is replayed from the committed offset, by the delivery
        # state in the table (done: skipped; in flight: re-sent in doubt under the same id).
        stream_wait_empty=False,
    )
    alerts = app.topic(k.alerts_topic, key_serializer="raw", value_serializer="raw")
    incidents = app.topic(k.incidents_topic, key_serializer="raw", value_serializer="raw")
    retries = app.topic(k.delivery_retries_topic, key_serializer="raw", value_serializer="raw")
    records = app.topic(k.deliveries_topic, key_serializer="raw", value_serializer="raw")
    dead = app.topic(k.delivery_dlq_topic, key_serializer="raw", value_serializer="raw")
    # value_type None: plain JSON objects in the changelog (Faust would call from_data() on a dict type).
    deliveries = app.Table("deliveries", default=None, partitions=k.partitions, key_type=str, value_type=None)
    last_sent = app.Table("suppression", default=None, partitions=k.partitions, key_type=str, value_type=None)
    # Written by key (use_partitioner), not by the current event's partition: the digest clock (a
    # timer, outside any stream) writes it too, and every write of the organisation's entry then
    # goes to one changelog partition, so recovery reads them in order.
    pager = app.Table("pager", default=None, partitions=k.partitions, key_type=str, value_type=None,
                      use_partitioner=True)
    by_name = {t.destination.name: t for t in targets}
    for_findings = [t for t in targets if t.destination.send == "findings"]
    for_incidents = [t for t in targets if t.destination.send == "incidents"]
    org = settings.chain.org
    budget, exempt = settings.deliver.pages_per_day, settings.deliver.pages_exempt
    digests_in_work: set[int] = set()
    http: list[aiohttp.ClientSession] = []
    lanes: dict[str, asyncio.Semaphore] = {}
    work: set[asyncio.Task[None]] = set()
    waiting: set[str] = set()  # deliveries whose retry waits for its time in this process
    room: list[asyncio.Semaphore] = []
    acks = InOrderAcks()

    def ack_now(event: Any) -> None:
        tp = event.message.tp
        acks.done(tp, acks.taken(tp, event))

    def lane(name: str) -> asyncio.Semaphore:
        if name not in lanes:
            lanes[name] = asyncio.Semaphore(by_name[name].destination.in_flight)
        return lanes[name]

    async def in_work(event: Any, job: Any) -> None:
        """Run `job` (a coroutine) in a task of its own and acknowledge `event` when it is done; the
        task keeps the event current, so its table writes go to the event's partition."""
        if not room:
            room.append(asyncio.Semaphore(MAX_OUTSTANDING))
        await room[0].acquire()
        tp = event.message.tp
        ticket = acks.taken(tp, event)

        async def run() -> None:
            try:
                await job
            except asyncio.CancelledError:
                raise  # stopping: not acknowledged, so replayed after the restart
            except Exception:
                log.exception("delivery work for %s/%d/%d failed; the agent stops so that a restart replays it",
                              event.message.topic, event.message.partition, event.message.offset)
                await app.crash(RuntimeError("delivery work failed"))
                raise
            else:
                acks.done(tp, ticket)
            finally:
                room[0].release()

        task = asyncio.ensure_future(run())
        work.add(task)
        task.add_done_callback(work.discard)

    def session() -> aiohttp.ClientSession:
        if not http:
            http.append(aiohttp.ClientSession())
        return http[0]

    async def record(rec: DeliveryRecord) -> None:
        await records.send(key=rec.delivery_uid.encode(), value=orjson.dumps(rec.message()))
        metrics.DELIVERIES.labels(metrics.outcome_label(rec.outcome)).inc()
        log.info("%s %s -> %s: %s (attempt %d, %s)", rec.outcome, rec.finding_uid, rec.destination, rec.status,
                 rec.attempt, "in doubt" if rec.detail.get("in_doubt") else "first try" if rec.attempt == 1 else "retry")

    async def attempt(target: Target, finding: dict[str, Any], step: Step, partition: int,
                      signature: dict[str, str], redrive_by: str | None = None) -> None:
        dest, fuid = target.destination, uid_of(finding)
        uid = delivery_uid(dest, fuid)
        deliveries[uid] = {"state": "sending", "attempt": step.attempt}
        if step.attempt == 1 and not step.in_doubt:
            for key in suppression_keys(finding):
                last_sent[f"{dest.name}\n{key}"] = {"at": finding["time"] / 1000, "finding": fuid}
        await app.producer.flush()  # the mark is on the broker before anything leaves
        async with lane(dest.name):
            rec = await send(session(), target, finding, attempt=step.attempt, now=time.time())
            if step.in_doubt:
                rec.detail["in_doubt"] = True
            if redrive_by is not None:
                rec.detail["redrive_by"] = redrive_by
            state, delay = after_attempt(dest, uid, rec.outcome, step.attempt)
            if state == "retrying":
                rec.detail["retry_in_s"] = round(delay or 0, 3)
                await retries.send(key=uid.encode(), partition=partition, value=orjson.dumps(
                    {"delivery_uid": uid, "destination": dest.name, "attempt": step.attempt + 1,
                     "due": time.time() + (delay or 0), "finding": finding, "sig": signature}))
            elif state == "dead_lettered":
                rec.outcome = "dead_lettered"
                await dead.send(key=uid.encode(), value=orjson.dumps(
                    {"delivery": rec.message(), "finding": finding, "sig": signature, "partition": partition}))
            deliveries[uid] = {"state": state, "attempt": step.attempt}
            await record(rec)
            # the outcome is on the broker before the lane takes its next attempt: a kill -9 re-sends
            # at most a lane of attempts, not also those done since the changelog's last flush
            await app.producer.flush()

    async def one_destination(target: Target, finding: dict[str, Any], partition: int,
                              signature: dict[str, str]) -> None:
        dest, fuid = target.destination, uid_of(finding)
        uid = delivery_uid(dest, fuid)
        keys = suppression_keys(finding)
        seen = {k: last_sent.get(f"{dest.name}\n{k}") for k in keys}
        at = finding["time"] / 1000
        step = first_step(dest, finding, deliveries.get(uid), {k: v["at"] for k, v in seen.items() if v}, at)
        if step.action == "suppress":
            deliveries[uid] = {"state": "suppressed", "attempt": 0}
            earlier = sorted({v["finding"] for v in seen.values() if v})
            await record(DeliveryRecord(uid, fuid, dest.name, "suppressed", 0, time.time(), "suppressed",
                                        f"same identity and detector(s) delivered within {dest.suppress_s:g}s",
                                        {"after": earlier}))
        elif step.action == "send":
            await attempt(target, finding, step, partition, signature)

    def signed(event: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """The finding an event carries and its signature; Unreadable unless a pinned scorer signed it."""
        finding = parse_finding(event.value)
        signature = from_headers(event.message.headers)
        problem = signature_problem(finding, signature, finding_keys)
        if problem is not None:
            raise Unreadable(problem)
        return finding, signature

    async def refuse(event: Any, what: str, exc: Exception) -> None:
        """Dead-letter an undeliverable message (where it was, and why) and acknowledge it."""
        msg = event.message
        log.warning("%s %d/%d is not deliverable: %s", what, msg.partition, msg.offset, exc)
        await dead.send(key=None, value=orjson.dumps(
            {"reason": str(exc)[:300], "src": f"{msg.topic}/{msg.partition}/{msg.offset}"}))
        ack_now(event)

    @app.agent(alerts)
    async def deliver(stream: Any) -> None:
        async for event in stream.noack().events():
            msg = event.message
            try:
                finding, signature = signed(event)
            except Unreadable as exc:
                await refuse(event, "alerts", exc)
                continue
            # Destinations decide (filters, suppression) in arrival order: each decision is written
            # before its task first waits, and tasks start in the order they are made.
            await in_work(event, asyncio.gather(*(one_destination(t, finding, msg.partition, signature)
                                                  for t in for_findings)))

    async def send_digest(day: int, digest: dict[str, Any]) -> None:
        """The day's digest to every incidents destination: a few attempts each, then a dead letter;
        then the pager forgets it (until then a restart sends it again, under the same ids)."""
        async def one(target: Target) -> None:
            dest = target.destination
            uid = delivery_uid(dest, uid_of(digest))
            rec = None
            for n in range(1, dest.max_attempts + 1):
                async with lane(dest.name):
                    rec = await send(session(), target, digest, attempt=n, now=time.time())
                await record(rec)
                if rec.outcome == "delivered":
                    return
                delay = retry_after(dest, uid, n)
                if delay is None:
                    break
                await asyncio.sleep(delay)
            if rec is not None:
                rec.outcome = "dead_lettered"
                await dead.send(key=uid.encode(), value=orjson.dumps({"delivery": rec.message(), "digest": digest}))
                await record(rec)
        try:
            await asyncio.gather(*(one(t) for t in for_incidents))
            pager[org] = digest_delivered(pager.get(org), day)
        finally:
            digests_in_work.discard(day)

    async def page_incident(finding: dict[str, Any], pages: bool, partition: int, signature: dict[str, str],
                            digests: list[tuple[int, list[dict[str, Any]]]]) -> None:
        work = [send_digest(day, digest_finding(org, day, held, now_ms=int(time.time() * 1000)))
                for day, held in digests]
        if pages:
            work += [one_destination(t, finding, partition, signature) for t in for_incidents]
        else:
            uid = uid_of(finding)
            await record(DeliveryRecord(delivery_uid(PAGER, uid), uid, PAGER.name, "held", 0, time.time(), "held",
                                        f"the daily paging budget ({budget}) is spent or the bar is now critical: "
                                        "in the day's digest", {}))
        await asyncio.gather(*work)

    @app.timer(interval=DIGEST_CLOCK_S)  # type: ignore[untyped-decorator]  # faust's decorators carry no types
    async def digest_clock() -> None:
        """A day's digest goes out once the day is over by the clock, also when no later page comes
        to carry it (the page agent sends it with the next day's first page otherwise)."""
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]  # TableManager has it, its type not
        saved = pager.get(org) if for_incidents and recovered else None
        if not saved:
            return
        state, digests = roll_day(saved, time.time(), per_day=budget, exempt=exempt)
        if not digests:
            return
        pager[org] = state
        for day, held in digests:
            if day not in digests_in_work:
                digests_in_work.add(day)
                task = asyncio.ensure_future(send_digest(day, digest_finding(org, day, held,
                                                                              now_ms=int(time.time() * 1000))))
                work.add(task)
                task.add_done_callback(work.discard)

    @app.agent(incidents)
    async def page(stream: Any) -> None:
        """Incident updates: the one that asks for an incident's page goes through the pager (the
        daily budget) to the incidents destinations, or waits in the digest; the others are kept
        in the store only (`aiaudit incidents`)."""
        async for event in stream.noack().events():
            msg = event.message
            try:
                finding, signature = signed(event)
                if finding.get("class_uid") != INCIDENT_CLASS_UID:
                    raise Unreadable("not an incident finding")
                asks = finding["unmapped"].get("page") is True
                if asks:
                    pages, state, digests = decide(pager.get(org), finding, per_day=budget, exempt=exempt)
            except (Unreadable, KeyError, TypeError, ValueError) as exc:
                await refuse(event, "incidents", exc)
                continue
            if not asks or not for_incidents:
                ack_now(event)
                continue
            pager[org] = state  # decided in arrival order, before the next incident is read
            todo = [(d, h) for d, h in digests if d not in digests_in_work]
            digests_in_work.update(d for d, _ in todo)
            await in_work(event, page_incident(finding, pages, msg.partition, signature, todo))

    async def retry_when_due(target: Target, finding: dict[str, Any], step: Step, partition: int,
                             signature: dict[str, str], due: float, by: str | None) -> None:
        # never longer than the destination's own longest backoff, whatever `due` says
        uid = delivery_uid(target.destination, uid_of(finding))
        waiting.add(uid)
        try:
            wait = min(due - time.time(), target.destination.backoff_max_s * 1.2 + 1.0)
            if wait > 0:
                await asyncio.sleep(wait)
        finally:
            waiting.discard(uid)
        await attempt(target, finding, step, partition, signature, by)

    @app.agent(retries)
    async def retry(stream: Any) -> None:
        async for event in stream.noack().events():
            try:
                job = orjson.loads(event.value)
                uid, name, n, due = job["delivery_uid"], job["destination"], job["attempt"], job["due"]
                by = job.get("redrive_by")  # written by `aiaudit alerts redeliver --by NAME`
                if type(uid) is not str or type(name) is not str or type(n) is not int or \
                        type(due) not in (int, float) or not math.isfinite(due) or \
                        not (by is None or type(by) is str and 0 < len(by) <= 128):
                    raise TypeError("delivery_uid, destination, attempt, due or redrive_by malformed")
                finding = parse_finding(orjson.dumps(job["finding"]))  # as strict as the alerts topic
                signature = job.get("sig")
                if signature_problem(finding, signature, finding_keys) is not None:
                    raise ValueError("the retry's finding is not signed by a pinned scoring worker")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("retries %d/%d is not a retry this agent wrote; skipped", event.message.partition,
                            event.message.offset)
                ack_now(event)
                continue
            target = by_name.get(name)
            if target is None or delivery_uid(target.destination, uid_of(finding)) != uid:
                log.warning("retry %s for destination %r: no such destination now; dead-lettered", uid, name)
                await dead.send(key=str(uid).encode(), value=orjson.dumps(
                    {"reason": f"destination {name!r} is no longer configured", "finding": finding}))
                ack_now(event)
                continue
            step = retry_step(deliveries.get(uid), n, redrive=by is not None)
            if step.action != "send" or uid in waiting:  # a copy of a retry already waiting here
                ack_now(event)
                continue
            await in_work(event, retry_when_due(target, finding, step, event.message.partition, signature, due, by))

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators carry no types
    async def announce() -> None:
        log.info("delivering incidents from %s (daily paging budget %s) to %s; findings from %s to %s",
                 k.incidents_topic, budget or "none",
                 ", ".join(f"{t.destination.name} ({t.destination.kind})" for t in for_incidents) or "no destination",
                 k.alerts_topic,
                 ", ".join(f"{t.destination.name} ({t.destination.kind})" for t in for_findings) or "no destination")

    @app.on_before_shutdown.connect  # a Faust signal
    async def close_http(*_: Any, **__: Any) -> None:
        for task in list(work):  # not acknowledged: replayed after the restart
            task.cancel()
        if http:
            await http[0].close()

    return app


def run(settings: Settings, targets: list[Target], finding_keys: Sequence[bytes], *, verbose: bool = False) -> None:
    """Run the delivery agent until SIGTERM/SIGINT (Faust handles the signals). Only findings signed
    by one of `finding_keys` (the scoring workers' public keys) are delivered."""
    import threading

    from aiaudit import __version__
    from aiaudit.pipeline.deliver.forward import RequestForwarder

    app = make_app(settings, targets, finding_keys)
    stop = threading.Event()
    forwarders = [RequestForwarder(settings, t, stop, __version__) for t in targets if t.destination.send == "requests"]
    for forwarder in forwarders:
        forwarder.start()
    level = "INFO" if verbose else "WARN"
    # Our line format, no colour codes (Faust's default colours its lines even into a file).
    worker = faust.Worker(app, loglevel=level, quiet=True, logging_config=dict_config(level))
    worker.spinner = None  # Faust's progress spinner writes cursor codes to stdout whatever the log goes to
    try:
        worker.execute_from_commandline()
    finally:
        stop.set()
        for forwarder in forwarders:
            forwarder.thread.join(30)
