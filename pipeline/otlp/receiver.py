"""`aiaudit otlp serve`: an OTLP/HTTP receiver (POST /v1/traces and /v1/logs, binary protobuf or
JSON) that turns OpenTelemetry GenAI spans into contract events signed with its emitter key.

A request is answered 200 only once every event it made is acknowledged by the broker (acks=all),
so a sender's OTLP exporter holds and retries what the receiver could not record: while the broker
is away the answer is 503 with Retry-After (the OTLP specification's retryable answer) and nothing
is lost. A span sent again (a retry, or two requests with the same span) is one event: spans are
known by a UUID of their sender, trace id and span id, remembered in memory and in a file
(pipeline/otlp/seen.py) once acknowledged; a request carrying a span still in flight waits for
that span's outcome instead of sending it twice.

Message content arrives as log events, often in another request than its span: content for a
span not yet recorded is held (bounded in characters, for `content_hold_s`); a span without its
content waits up to `content_wait_ms` in its own request for it. Content that arrives after its
span's event was sent is counted (`late`) and not recorded (the event is signed and sent).

Senders authenticate with a token of their own (`aiaudit otlp sender add NAME`); each sender's
events carry `<emitter key name>/<sender>-<instance>` as their emitter id, numbered by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aiaudit.pipeline import metrics
from aiaudit.pipeline.contract.emitter_keys import load_emitter_signer
from aiaudit.pipeline.emit.producer import Delivery, Emitter
from aiaudit.pipeline.errors import AiAuditError
from aiaudit.pipeline.gateway.classify import Classifier
from aiaudit.pipeline.otlp import wire
from aiaudit.pipeline.otlp.mapping import (
    DECLARED,
    SEMCONV_VERSION,
    Content,
    Policy,
    content_of_attributes,
    content_of_log,
    event_id,
    event_of,
    is_genai,
    receiver_policy,
)
from aiaudit.pipeline.otlp.seen import Seen
from aiaudit.pipeline.otlp.senders import Senders, senders_file, state_dir
from aiaudit.pipeline.settings import Settings

log = logging.getLogger("aiaudit.otlp")
GRPC_UNAUTHENTICATED, GRPC_INVALID_ARGUMENT, GRPC_UNAVAILABLE, GRPC_RESOURCE_EXHAUSTED = 16, 3, 14, 8
PUBLISH_RETRY_S = 30.0
RECEIVER_LINGER_MS = 5  # its requests wait for the broker's acknowledgement of their events
T = TypeVar("T")


@dataclass
class Held:
    content: Content
    until: float


class ContentHold:
    """Content waiting for its span, by event id: at most `max_chars` characters, each for `hold_s`."""

    def __init__(self, max_chars: int, hold_s: float) -> None:
        self.max_chars, self.hold_s = max_chars, hold_s
        self._held: OrderedDict[str, Held] = OrderedDict()
        self._chars = 0
        self._waiters: dict[str, asyncio.Event] = {}

    def put(self, eid: str, content: Content) -> int:
        """Hold `content` for `eid`; returns how many held contents were let go to make room."""
        self.expire()
        held = self._held.get(eid)
        if held is None:
            held = self._held[eid] = Held(Content(), time.monotonic() + self.hold_s)
        held.content.add(content)
        self._chars += content.chars()
        let_go = 0
        while self._chars > self.max_chars and self._held:
            _, old = self._held.popitem(last=False)
            self._chars -= old.content.chars()
            let_go += 1
        if (waiter := self._waiters.get(eid)) is not None:
            waiter.set()
        return let_go

    def take(self, eid: str) -> Content | None:
        held = self._held.pop(eid, None)
        if held is None:
            return None
        self._chars -= held.content.chars()
        return held.content

    def expire(self) -> int:
        now, gone = time.monotonic(), 0
        while self._held:
            eid, held = next(iter(self._held.items()))
            if held.until > now:
                break
            self._held.popitem(last=False)
            self._chars -= held.content.chars()
            gone += 1
        if gone:
            metrics.OTLP_LOG_RECORDS.labels("expired").inc(gone)
        return gone

    async def wait(self, eid: str, timeout_s: float) -> Content | None:
        if eid not in self._held and timeout_s > 0:
            waiter = self._waiters.setdefault(eid, asyncio.Event())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout_s)
            self._waiters.pop(eid, None)
        return self.take(eid)


class Receiver:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        o = settings.otlp
        self.senders = Senders(senders_file(settings))
        self.seen = Seen(state_dir(settings) / "seen-event-ids.log", o.dedupe_keep)
        self.hold = ContentHold(o.max_held_chars, o.content_hold_s)
        self.classifier = Classifier()
        self.policy: Policy = receiver_policy(o.policy_id, o.content_wait_ms)
        self._key_name = self._emitter_key_name()
        self._instance = uuid.uuid4().hex[:12]
        self._emitters: dict[str, Emitter] = {}
        self._emit_lock = threading.Lock()
        self._inflight: dict[str, asyncio.Future[bool]] = {}  # spans claimed, until the broker's answer
        self._emitted: set[str] = set()  # ... of which the event is made (content for them is late)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self.app = Starlette(routes=[Route("/v1/traces", self.traces, methods=["POST"]),
                                     Route("/v1/logs", self.logs, methods=["POST"])], lifespan=self._lifespan)

    def _emitter_key_name(self) -> str:
        if not self.settings.emitter.sign:
            return "otlp"
        if self.settings.emitter.key_file is None:
            raise AiAuditError("the OTLP receiver signs with an emitter key: make one with `aiaudit keys emitter new "
                               "otlp` and set AIAUDIT_EMITTER__KEY_FILE to the file it prints")
        return load_emitter_signer(self.settings.emitter.key_file)[1]

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        poller = threading.Thread(target=self._poll, name="aiaudit-otlp-poll", daemon=True)
        poller.start()
        threading.Thread(target=self._publish_until_done, name="aiaudit-otlp-policy", daemon=True).start()
        log.info("aiaudit: OTLP spans recorded under policy %s version %s", self.policy.policy_id, self.policy.version)
        try:
            yield
        finally:
            self._stop.set()
            poller.join(5)
            for emitter in list(self._emitters.values()):
                left = emitter.drain(10)
                if left:
                    log.error("aiaudit: %s: %d events not acknowledged at stop (their senders were answered 503 "
                              "and send them again)", emitter.emitter_id, left)
            self.seen.flush()

    # --- Kafka ---------------------------------------------------------------------------------

    def _publish_until_done(self) -> None:
        while not self._stop.is_set() and not self._publish():
            self._stop.wait(PUBLISH_RETRY_S)

    def _poll(self) -> None:
        """Serve the emitters' delivery reports (their outcomes go to the waiting requests)."""
        while not self._stop.is_set():
            emitters = list(self._emitters.values())
            for emitter in emitters:
                emitter.poll(0)
            if not emitters:
                time.sleep(0.05)
            else:
                emitters[0].poll(0.02)

    def _publish(self) -> bool:
        """The receiver's policy bundle on the policies topic (as the gateway publishes its own)."""
        from confluent_kafka import Producer

        from aiaudit.pipeline.kafka import config as kafka_config

        p = self.policy
        message = {"policy_id": p.policy_id, "policy_version": p.version, "declared_version": DECLARED,
                   "canonical_json": p.canonical_json.decode(), "source_yaml": p.source_yaml,
                   "loaded_at": datetime.now(timezone.utc).isoformat(), "gateway_id": f"otlp:{self._instance}"}
        producer = Producer(kafka_config.producer(self.settings))
        producer.produce(self.settings.kafka.policies_topic, key=p.version.encode(), value=orjson.dumps(message))
        if producer.flush(10):
            log.warning("aiaudit: the broker has not taken policy bundle %s yet; trying again", p.version)
            return False
        return True

    def _emitter(self, sender: str) -> Emitter:
        with self._emit_lock:
            emitter = self._emitters.get(sender)
            if emitter is None:
                # A request is answered once its events are acknowledged: a short linger, not the SDK's.
                emitter = Emitter(self.settings, emitter_id=f"{self._key_name}/{sender}-{self._instance}",
                                  on_delivery=self._delivered, extra_config={"linger.ms": RECEIVER_LINGER_MS})
                self._emitters[sender] = emitter
            return emitter

    def _delivered(self, d: Delivery) -> None:
        """A delivery report (on the poll thread): the waiting request learns its outcome."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._settle, d.event_id, d.error is None)

    def _settle(self, eid: str, ok: bool) -> None:
        """An event's outcome (on the event loop): acknowledged, it is seen (in memory now, on disk
        with the next flush); failed, it is no longer in flight and the sender's retry sends it."""
        self._emitted.discard(eid)
        if ok:
            self.seen.note(eid)
        future = self._inflight.pop(eid, None)
        if future is not None and not future.done():
            future.set_result(ok)

    def _send(self, sender: str, events: list[dict[str, Any]]) -> int:
        """Hand the events to the sender's emitter; how many it took (the rest: its queue is full)."""
        emitter = self._emitter(sender)
        for i, event in enumerate(events):
            try:
                emitter.emit(event, timeout_s=0.5)
            except AiAuditError as exc:  # the producer's queue stays full: the broker is away
                log.error("aiaudit: OTLP events from %s not sent (%s); the sender is answered 503", sender, exc)
                return i
        return len(events)

    # --- HTTP ----------------------------------------------------------------------------------

    async def _read(self, request: Request, parse: Callable[[bytes, str], list[T]]) -> tuple[str, str, list[T]] | Response:
        """The sender, the content type and what `parse` makes of the body (spans, log records); or
        the answer that refuses them."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        answer_type = content_type if content_type in (wire.PROTOBUF, wire.JSON) else wire.JSON
        sender = self.senders.authenticate(request.headers.get("authorization"))
        if sender is None:
            metrics.OTLP_REFUSED.labels("unauthenticated").inc()
            return self._status(401, GRPC_UNAUTHENTICATED, "no valid sender token (Authorization: Bearer aiot_...; "
                                "`aiaudit otlp sender add NAME` makes one)", answer_type)
        if content_type not in (wire.PROTOBUF, wire.JSON):
            metrics.OTLP_REFUSED.labels("media_type").inc()
            return self._status(415, GRPC_INVALID_ARGUMENT, f"Content-Type must be {wire.PROTOBUF} or {wire.JSON}",
                                answer_type)
        limit = self.settings.otlp.max_body_bytes
        try:
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                raise wire.TooLarge(f"the body is over {limit} bytes")
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise wire.TooLarge(f"the body is over {limit} bytes")
                chunks.append(chunk)
            body = wire.decompress(b"".join(chunks), request.headers.get("content-encoding"), limit)
            items = parse(body, content_type)
        except wire.TooLarge as exc:
            metrics.OTLP_REFUSED.labels("too_large").inc()
            return self._status(413, GRPC_RESOURCE_EXHAUSTED, str(exc), content_type)
        except wire.WireError as exc:
            metrics.OTLP_REFUSED.labels("malformed").inc()
            return self._status(400, GRPC_INVALID_ARGUMENT, str(exc), content_type)
        return sender, content_type, items

    @staticmethod
    def _status(http: int, grpc: int, message: str, content_type: str, retry_after: int | None = None) -> Response:
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return Response(wire.status(grpc, message, content_type), http, headers=headers, media_type=content_type)

    async def traces(self, request: Request) -> Response:
        read = await self._read(request, wire.spans_of)
        if isinstance(read, Response):
            return read
        sender, content_type, spans = read
        mapped = [s for s in spans if is_genai(s)]
        rejected = len(spans) - len(mapped)
        if rejected:
            metrics.OTLP_SPANS.labels("rejected").inc(rejected)
        # One event per span: a span twice in this request or already recorded is not sent again; one
        # in flight (another request's, or this span's earlier attempt) is waited for, not sent twice.
        mine: dict[str, wire.Span] = {}
        waits: list[asyncio.Future[bool]] = []
        duplicates = 0
        loop = asyncio.get_running_loop()
        for span in mapped:
            eid = event_id(sender, span.trace_id, span.span_id)
            if eid in mine or eid in self.seen:
                duplicates += 1
            elif eid in self._inflight:
                waits.append(self._inflight[eid])
                duplicates += 1
            else:
                mine[eid] = span
                self._inflight[eid] = loop.create_future()
        if duplicates:
            metrics.OTLP_SPANS.labels("duplicate").inc(duplicates)
        ok = await self._record(sender, mine)
        if ok and waits:
            ok = await self._acknowledged(waits)
        if ok:
            await asyncio.to_thread(self.seen.flush)  # on disk before the sender hears it is recorded
        else:
            metrics.OTLP_REFUSED.labels("broker_unavailable").inc()
            return self._status(503, GRPC_UNAVAILABLE, "the broker did not acknowledge every event in time: send again",
                                content_type, retry_after=self.settings.otlp.retry_after_s)
        message = ""
        if rejected:
            message = (f"{rejected} of {len(spans)} spans are not GenAI operations (no gen_ai.operation.name, "
                       f"semantic conventions {SEMCONV_VERSION}) or lack trace and span ids: not recorded")
        return Response(wire.traces_response(rejected, message, content_type), 200, media_type=content_type)

    async def _acknowledged(self, futures: list[asyncio.Future[bool]]) -> bool:
        """Whether the broker acknowledged every one within the delivery timeout (shielded: an event
        not acknowledged in time stays in flight, and a sender's next attempt waits for it)."""
        try:
            done = await asyncio.wait_for(asyncio.shield(asyncio.gather(*futures)), self.settings.otlp.delivery_timeout_s)
        except asyncio.TimeoutError:
            return False
        return all(done)

    async def _record(self, sender: str, spans: dict[str, wire.Span]) -> bool:
        """Make and send the events of `spans` (each in flight already); True once the broker
        acknowledged every one. Content is taken for each span first: its own attributes, what
        is held for it, or what arrives within the content wait."""
        if not spans:
            return True
        o = self.settings.otlp
        contents: dict[str, Content | None] = {}
        waits = []
        for eid, span in spans.items():
            own = content_of_attributes(span.attributes)
            held = self.hold.take(eid)
            if own is not None and held is not None:
                own.add(held)
            contents[eid] = own or held
            if contents[eid] is None:
                waits.append(eid)
        if waits and o.content_wait_ms > 0:
            found = await asyncio.gather(*(self.hold.wait(eid, o.content_wait_ms / 1000) for eid in waits))
            contents.update({eid: c for eid, c in zip(waits, found, strict=True) if c is not None})
        self._emitted.update(spans)  # content for these that arrives from now on is late
        events = [event_of(span, contents[eid], sender=sender, policy=self.policy, classifier=self.classifier,
                           retention_scope=o.retention_scope) for eid, span in spans.items()]
        sent = await asyncio.to_thread(self._send, sender, events)
        for event in events[sent:]:  # never handed to the producer: not in flight (a retry sends them)
            self._settle(event["event_id"], False)
        if sent < len(events):
            return False
        ok = await self._acknowledged([self._inflight[eid] for eid in spans if eid in self._inflight])
        if ok:
            metrics.OTLP_SPANS.labels("recorded").inc(len(spans))
        return ok and all(eid in self.seen for eid in spans)

    async def logs(self, request: Request) -> Response:
        read = await self._read(request, wire.logs_of)
        if isinstance(read, Response):
            return read
        sender, content_type, records = read
        rejected = late = 0
        for record in records:
            content = content_of_log(record)
            if content is None or len(record.trace_id) != 32 or len(record.span_id) != 16:
                rejected += 1
                continue
            eid = event_id(sender, record.trace_id, record.span_id)
            if eid in self.seen or eid in self._emitted:
                late += 1
                continue
            let_go = self.hold.put(eid, content)
            if let_go:
                metrics.OTLP_LOG_RECORDS.labels("let_go").inc(let_go)
                log.warning("aiaudit: OTLP content held for %d spans let go to stay under %d characters",
                            let_go, self.settings.otlp.max_held_chars)
        metrics.OTLP_LOG_RECORDS.labels("rejected").inc(rejected)
        metrics.OTLP_LOG_RECORDS.labels("late").inc(late)
        metrics.OTLP_LOG_RECORDS.labels("held").inc(len(records) - rejected - late)
        message = ""
        if rejected:
            message = (f"{rejected} of {len(records)} log records are not GenAI content events with trace and span "
                       "ids: not read")
        if late:
            message += ("; " if message else "") + (f"{late} content events came after their span was recorded: "
                                                    "not in its evidence")
        return Response(wire.logs_response(rejected, message, content_type), 200, media_type=content_type)


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    receiver = Receiver(settings)
    if not receiver.senders.names():
        raise AiAuditError(f"no OTLP senders in {receiver.senders.path}: `aiaudit otlp sender add NAME` makes one and "
                           "prints its token")
    if settings.otlp.metrics_port:
        metrics.serve(settings.otlp.metrics_port)
    uvicorn.run(receiver.app, host=host, port=port, log_level="warning", access_log=False)
