"""The gateway (edge): OpenAI-compatible HTTP in, policy decision, upstream call, one event out.

Routes (a route is a policy route; `/v1/...` is the route named `default`):

    GET  /healthz                               policy version, evidence availability
    GET  [/r/<route>]/v1/models                 the models this route may call
    POST [/r/<route>]/v1/chat/completions       with or without `stream`
    POST [/r/<route>]/v1/embeddings

Per request: authenticate (API key or OIDC token; nothing the caller says about itself
counts) -> classify the prompt -> decide (pure, aiaudit.pipeline.gateway.policy) -> deny, or forward
(redacted or rerouted as decided) -> classify the response -> one event to the emitter SDK.
Denied and failed requests produce events too. The gateway keeps no state between requests,
so replicas scale behind any load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from aiaudit.pipeline import metrics
from aiaudit.pipeline.contract.subject_keys import SubjectKeys
from aiaudit.pipeline.errors import AiAuditError, AuthError, ConfigError, PolicyError, UpstreamError
from aiaudit.pipeline.gateway import shape, wire
from aiaudit.pipeline.gateway.classify import Classification, content_features, redact
from aiaudit.pipeline.gateway.config import GatewayConfig, load_config
from aiaudit.pipeline.gateway.event import (
    Outcome,
    build_event,
    commit,
    content_expiry,
    kept_content,
    trace_context,
)
from aiaudit.pipeline.gateway.evidence import ContentKeeper, Evidence, KeepJob
from aiaudit.pipeline.gateway.identity import API_KEY_PREFIX, ApiKeys, Jwks, Principal
from aiaudit.pipeline.gateway.policy import Decision, Policy, bundle_message, decide, parse_policy
from aiaudit.pipeline.gateway.upstream import Answer, Vendor
from aiaudit.pipeline.settings import Settings

log = logging.getLogger("aiaudit.gateway")

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
ROUTE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_LABEL_CHARS = 256
MAX_VENDOR_TEXT_CHARS = 256  # what a vendor names (its model) is cut to this in the record
TRUNCATED = "…[truncated]"
WORKER_VERBOSE = "AIAUDIT_GATEWAY_WORKER_VERBOSE"  # set by `gateway serve --workers N -v` for its processes


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    """OpenAI's error shape, so official clients raise their usual exception types."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code or kind}}, status)


def _no_evidence() -> JSONResponse:
    """A fail-closed route's answer when the request's evidence cannot be recorded."""
    return _error(503, "evidence cannot be recorded; this route fails closed", "service_unavailable")


class PolicyHolder:
    """The live policy bundle. A reload publishes the new bundle before it governs anything, and a
    file that fails to parse or publish leaves the current bundle in force (`last_error` says why)."""

    def __init__(self, path: os.PathLike[str], publish: Callable[[Policy], None]) -> None:
        self.path = os.fspath(path)
        self._publish = publish
        self.last_error: str | None = None
        self._stamp: tuple[int, int] | None = None
        self.current = self._load()  # at start-up a bad file is fatal: there is nothing to keep

    def _load(self) -> Policy:
        st = os.stat(self.path)
        with open(self.path, encoding="utf-8") as f:
            policy = parse_policy(f.read(), source=self.path)
        self._publish(policy)
        self._stamp = (st.st_mtime_ns, st.st_size)
        return policy

    def reload_if_changed(self) -> bool:
        """Returns True when a new bundle took over."""
        try:
            st = os.stat(self.path)
            if (st.st_mtime_ns, st.st_size) == self._stamp:
                return False
            policy = self._load()
        except (OSError, AiAuditError) as exc:
            msg = exc.strerror if isinstance(exc, OSError) else str(exc)
            if msg != self.last_error:
                log.error("policy not reloaded, %s stays in force: %s", self.current.version, msg)
            self.last_error = msg
            return False
        self.last_error = None
        if policy.version != self.current.version:
            log.warning("policy %s now in force (was %s)", policy.version, self.current.version)
        self.current = policy
        return True


@dataclass
class Call:
    """One request on its way through: what the decision and the event need."""

    principal: Principal
    route: str
    operation: str  # chat | embeddings
    policy: Policy
    body: dict[str, Any]
    prompt: str
    prompt_class: Classification
    decision: Decision
    untrusted_label: str | None
    trace: tuple[str | None, str | None]
    occurred_at: datetime
    refusal: int = 403  # the status of a denial: 400 when the body was not of a known shape
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.perf_counter)  # for the latency histogram


class Gateway:
    def __init__(self, settings: Settings, config: GatewayConfig, evidence: Evidence, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.settings = settings
        self.config = config
        self.evidence = evidence
        self.content_keys = SubjectKeys(settings.content_keys_dir())  # what kept content is sealed under
        self.keeper = ContentKeeper(self.content_keys, evidence)
        self.clock = clock
        self.gateway_id = settings.gateway.gateway_id or socket.gethostname()
        self.api_keys = ApiKeys(config.api_keys)
        self.jwks = Jwks(config.oidc, self._fetch_json) if config.oidc else None
        self.vendors = {name: Vendor.open(name, spec) for name, spec in config.upstreams.items()}
        self.policies = PolicyHolder(settings.gateway.policy_file, self._publish)
        self._watcher: asyncio.Task[None] | None = None

    # -- life cycle ---------------------------------------------------------------------------
    def _publish(self, policy: Policy) -> None:
        _check_vendors(self.settings, self.config, policy)
        stamp = self.clock().isoformat()
        self.evidence.publish_policy(bundle_message(policy, loaded_at=stamp, gateway_id=self.gateway_id))

    async def _fetch_json(self, url: str) -> dict[str, Any]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(url, raise_for_status=True) as response:
                return await response.json(content_type=None)  # type: ignore[no-any-return]  # a JWKS document

    async def _watch_policy(self) -> None:
        while True:
            await asyncio.sleep(self.settings.gateway.policy_reload_s)
            # Parsing and publishing block (the publish waits for the broker): off the event loop.
            await asyncio.to_thread(self.policies.reload_if_changed)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        if self.jwks is not None:
            with contextlib.suppress(Exception):  # an issuer down at start-up is retried per token
                await self.jwks.refresh()
        self._watcher = asyncio.create_task(self._watch_policy())
        try:
            yield
        finally:
            self._watcher.cancel()
            for vendor in self.vendors.values():
                await vendor.aclose()
            await asyncio.to_thread(self.keeper.close)
            await asyncio.to_thread(self.evidence.close)

    # -- request path -------------------------------------------------------------------------
    async def _principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("missing bearer credentials (an API key or an OIDC token)")
        token = token.strip()
        if token.startswith(API_KEY_PREFIX):
            return self.api_keys.authenticate(token)
        if self.jwks is None:
            raise AuthError("invalid API key")
        return await self.jwks.authenticate(token)

    async def _read_json(self, request: Request) -> dict[str, Any]:
        limit = self.settings.gateway.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refused(_error(413, f"request body larger than {limit} bytes", "invalid_request_error"))
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Refused(_error(413, f"request body larger than {limit} bytes", "invalid_request_error"))
            chunks.append(chunk)
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            raise _Refused(_error(400, "request body is not JSON", "invalid_request_error")) from None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise _Refused(_error(400, "request body must be an object with a `model`", "invalid_request_error"))
        # What the caller controls is bounded here, before any vendor call: a value the record
        # cannot hold must never reach a vendor and leave no evidence.
        if not MODEL_NAME.fullmatch(body["model"]):
            raise _Refused(_error(400, "`model` must be 1-128 letters, digits and . _ : / @ + - (no '..')",
                                  "invalid_request_error", "invalid_model"))
        if ".." in body["model"]:
            raise _Refused(_error(400, "`model` must not contain '..'", "invalid_request_error", "invalid_model"))
        if "stream" in body and type(body["stream"]) is not bool:
            raise _Refused(_error(400, "`stream` must be true or false (a JSON boolean)", "invalid_request_error"))
        return body

    async def _begin(self, request: Request, operation: str) -> Call:
        try:
            principal = await self._principal(request)
        except AuthError as exc:
            log.warning("refused %s %s: %s", request.method, request.url.path, exc.message)
            if exc.status == 503:
                raise _Refused(_error(503, exc.message, "service_unavailable", "identity_provider_unavailable")) from None
            raise _Refused(_error(401, exc.message, "authentication_error", "invalid_api_key")) from None
        body = await self._read_json(request)
        route = request.path_params.get("route", "default")
        if not ROUTE_NAME.fullmatch(route):
            raise _Refused(_error(404, "no such route (route names are 1-64 letters, digits, - and _)",
                                  "invalid_request_error", "unknown_route"))
        policy = self.policies.current
        route_policy = policy.route(route)
        # Every string the vendor would get is classified (contents, names, tool arguments and
        # descriptions, schemas ...), not only the message texts (pipeline/gateway/shape.py).
        prompt_class = policy.classifier.classify_all(shape.strings(body))  # each string alone: no match across two
        label = body.get("user") if isinstance(body.get("user"), str) else request.headers.get("x-user")
        if label is not None and len(label) > MAX_LABEL_CHARS:  # a label only, never identity: kept, cut short
            label = label[:MAX_LABEL_CHARS] + TRUNCATED
        try:
            shape.check(operation, body, frozenset(route_policy.extra_fields) if route_policy else frozenset())
            decision = decide(policy, route, principal.role, body["model"], prompt_class)
            refusal = 403
        except shape.ShapeError as exc:  # not a known body shape: refused, and recorded as denied
            decision, refusal = Decision("deny", (f"request body: {exc}"[:1024],), None), 400
        texts = wire.request_texts(operation, body) or []
        call = Call(principal, route, operation, policy, body, "\n".join(texts), prompt_class, decision, label,
                    trace_context(request.headers.get("traceparent")), self.clock(), refusal=refusal)
        request.state.request_id = call.event_id  # the response's X-Request-Id is the record's event_id
        return call

    def _route_fails_closed(self, call: Call) -> bool:
        route = call.policy.route(call.route)
        return route is None or route.fail == "closed"

    def _record(self, call: Call, outcome: Outcome) -> str | None:
        """Emit the request's event (and its content keys); an upstream failure becomes a decision reason.
        None, or why evidence could not be handed over."""
        route = call.policy.route(call.route)
        rule = route.content if route else "none"
        if call.decision.decision == "deny" and not (route and route.keep_denied_content):
            rule = "none"  # a denied prompt (a secret, say) is not kept, nor committed to, unless the route asks
        scope = route.retention_scope if route else "standard"
        target = call.decision.target
        vendor = self.vendors.get(target.vendor) if target else None
        prompt = self._kept_prompt(call)
        commitments = commit(rule, prompt, outcome.response_text, os.urandom(32))
        features = content_features(call.prompt, call.prompt_class, outcome.response_text or "", outcome.response_class)
        event = build_event(
            event_id=call.event_id, occurred_at=call.occurred_at, principal=call.principal,
            untrusted_label=call.untrusted_label, route=call.route, operation=call.operation,
            provider=vendor.name if vendor else "none",  # the vendor as the policy names it: one identity
            model=target.model if target else call.body["model"][:256], prompt_class=call.prompt_class,
            policy=call.policy, decision=call.decision, extra_reasons=(outcome.error,) if outcome.error else (),
            retention_scope=scope,
            features=features, outcome=outcome, commitments=commitments, trace=call.trace)
        try:
            self.evidence.emit(event)
        except AiAuditError as exc:
            self.evidence.count_lost()
            metrics.GATEWAY_UNRECORDED.labels("event").inc()
            log.error("event %s not recorded: %s", call.event_id, exc)
            return str(exc)
        metrics.GATEWAY_REQUESTS.labels(call.decision.decision).inc()
        metrics.GATEWAY_SECONDS.labels(call.decision.decision).observe(time.perf_counter() - call.started)
        kept = kept_content(rule, commitments, prompt, outcome.response_text)
        if kept is not None:
            # Sealed under the keys of the people it is about (the actor, and whom an agent acted for)
            # and its record's: `aiaudit erase` destroys one, and no copy opens again.
            subjects = tuple(dict.fromkeys(s for s in (call.principal.id, call.principal.on_behalf_of) if s))
            expires = content_expiry(call.occurred_at, call.policy.bundle.retention_days.get(scope, 30))
            # Sealed and sent by the keeper's thread: its key files' fsync is not on the request path.
            self.keeper.submit(KeepJob(call.event_id, subjects, expires, scope, kept))
        return None

    def _gate(self, call: Call) -> Response | None:
        """A response that ends the request here (denied, or no evidence on a fail-closed route)."""
        if call.decision.decision == "deny":
            failed = self._record(call, Outcome())
            if failed and self._route_fails_closed(call):
                return _no_evidence()
            if call.refusal == 400:
                return _error(400, "; ".join(call.decision.reasons), "invalid_request_error", "unknown_body_shape")
            return _error(403, "; ".join(call.decision.reasons), "policy_denied")
        if self._route_fails_closed(call):
            why = self.evidence.available()
            if why is not None:
                call.decision = Decision("deny", (f"evidence cannot be recorded ({why}); route fails closed",), None)
                self._record(call, Outcome())
                return _no_evidence()
        return None

    @staticmethod
    def _kept_prompt(call: Call) -> str:
        """The prompt as policy lets it be kept: what was forwarded, i.e. redacted where the decision redacts."""
        if not call.decision.redact_categories:
            return call.prompt
        return redact(call.prompt, call.policy.classifier.classify(call.prompt), call.decision.redact_categories)

    def _outgoing(self, call: Call) -> bytes:
        body = dict(call.body)
        if call.decision.redact_categories:  # every forwarded string, as classified (shape.transform)
            classify, cats = call.policy.classifier.classify, call.decision.redact_categories
            body = shape.transform(body, lambda text: redact(text, classify(text), cats))
        assert call.decision.target is not None  # not denied
        body["model"] = call.decision.target.model
        return orjson.dumps(body)

    async def _admit(self, request: Request, operation: str) -> Call | Response:
        """The request on its way to a vendor, or the response that ends it here."""
        try:
            call = await self._begin(request, operation)
        except _Refused as r:
            return r.response
        return self._gate(call) or call

    def _answer(self, call: Call, upstream: Answer, outcome: Outcome) -> Response:
        """Record the request, then pass the vendor's answer on (unless a fail-closed route could not
        record it). A vendor's error is not passed on: its body can name internals."""
        if not upstream.ok:
            return self._vendor_refused(call, upstream.status, upstream.body, outcome.latency_us)
        failed = self._record(call, outcome)
        if failed and self._route_fails_closed(call):
            return _no_evidence()
        return Response(upstream.body, upstream.status, media_type=upstream.content_type)

    def _vendor_refused(self, call: Call, status: int, body: bytes, latency_us: int) -> Response:
        """A vendor's non-2xx answer: its detail goes to the record and the log, the caller gets the
        status and a generic message with the request id (the record's event_id)."""
        detail = body[:300].decode("utf-8", "replace")
        log.warning("request %s: upstream %s answered %d: %s", call.event_id, call.decision.target, status, detail)
        failed = self._record(call, Outcome(latency_us=latency_us, error=f"upstream status {status}: {detail}"))
        if failed and self._route_fails_closed(call):
            return _no_evidence()
        status = status if 400 <= status < 600 else 502  # a redirect or 1xx is not an answer to pass on
        return _error(status, f"the AI vendor answered {status} (request {call.event_id}); the gateway's operators "
                              "can see why", "upstream_error", f"upstream_{status}")

    async def chat(self, request: Request) -> Response:
        call = await self._admit(request, "chat")
        if isinstance(call, Response):
            return call
        target = call.decision.target
        assert target is not None
        vendor = self.vendors[target.vendor]
        payload = self._outgoing(call)
        if call.body.get("stream"):
            return await self._chat_stream(call, vendor, payload)
        started = time.perf_counter()
        try:
            upstream = await vendor.post("chat/completions", target.model, payload)
        except UpstreamError as exc:
            return self._upstream_failed(call, exc, started)
        return self._answer(call, upstream, self._chat_outcome(call, upstream, int((time.perf_counter() - started) * 1e6)))

    def _chat_outcome(self, call: Call, upstream: Answer, latency_us: int) -> Outcome:
        if not upstream.ok:
            return Outcome(latency_us=latency_us, error=f"upstream status {upstream.status}")
        try:
            answer = wire.chat_answer(upstream.json())
        except ValueError:
            answer = None
        if answer is None:
            return Outcome(latency_us=latency_us, error="upstream answered with something that is not a JSON object")
        return self._outcome(call, answer, latency_us)

    @staticmethod
    def _outcome(call: Call, answer: wire.ChatAnswer, latency_us: int, error: str | None = None) -> Outcome:
        """The event's view of a vendor's answer: the response classified under the call's policy."""
        model = answer.model
        if model is not None and len(model) > MAX_VENDOR_TEXT_CHARS:  # the vendor's words: cut, and marked so
            model = model[:MAX_VENDOR_TEXT_CHARS] + TRUNCATED
        return Outcome(response_model=model, response_text=answer.text,
                       response_class=call.policy.classifier.classify(answer.text) if answer.text is not None else None,
                       input_tokens=answer.input_tokens, output_tokens=answer.output_tokens, latency_us=latency_us,
                       error=error)

    def _upstream_failed(self, call: Call, exc: UpstreamError, started: float) -> Response:
        """The vendor could not be reached or timed out: the detail (hosts, ports, library errors)
        goes to the record and the log; the caller gets a generic message with the request id."""
        latency = int((time.perf_counter() - started) * 1e6)
        log.warning("request %s: upstream failed: %s", call.event_id, exc)
        failed = self._record(call, Outcome(latency_us=latency, error=f"upstream failed: {exc}"))
        if failed and self._route_fails_closed(call):
            return _no_evidence()
        what = {504: "timed out", 400: "cannot take this model name"}.get(exc.status, "could not be used")
        return _error(exc.status, f"the AI vendor {what} (request {call.event_id})", "upstream_error")

    async def _chat_stream(self, call: Call, vendor: Vendor, payload: bytes) -> Response:
        started = time.perf_counter()
        assert call.decision.target is not None
        try:
            upstream = await vendor.open_stream("chat/completions", call.decision.target.model, payload)
        except UpstreamError as exc:
            return self._upstream_failed(call, exc, started)
        if not upstream.ok:
            try:
                body = await upstream.read()
            except UpstreamError as exc:
                body = str(exc).encode()
            finally:
                upstream.close()
            return self._vendor_refused(call, upstream.status, body, int((time.perf_counter() - started) * 1e6))

        async def relay() -> AsyncIterator[bytes]:
            tally = wire.StreamTally()
            problem: str | None = None
            done_event: bytes | None = None
            chunks = 0
            recorded = False

            def record(error: str | None) -> str | None:
                nonlocal recorded
                recorded = True
                return self._record(call, self._outcome(call, tally.answer(),
                                                        int((time.perf_counter() - started) * 1e6), error))

            try:
                try:
                    async for event in upstream.events():
                        data = wire.sse_data(event)
                        if data == wire.DONE:
                            done_event = event  # held back until the event is recorded (fail-closed)
                            continue
                        if data:
                            tally.add(data)
                        chunks += 1
                        yield event
                except UpstreamError as exc:
                    problem = f"upstream failed: {exc}"
                    log.warning("request %s: %s", call.event_id, problem)
                finally:
                    upstream.close()
                failed = record(problem)
                if (failed and self._route_fails_closed(call)) or problem:
                    message = ("evidence cannot be recorded; this route fails closed" if failed
                               else f"the AI vendor's stream failed (request {call.event_id})")
                    yield b"data: " + orjson.dumps({"error": {"message": message, "type": "service_unavailable"}}) + b"\n\n"
                    return
                yield done_event or b"data: [DONE]\n\n"
            finally:
                # The caller hung up (the relay was cancelled or closed mid-stream): the vendor had the
                # prompt, so the request is recorded all the same, with what was seen so far.
                if not recorded:
                    record(f"client_disconnected after {chunks} chunk(s), {len(''.join(tally.parts))} character(s)")

        return StreamingResponse(relay(), upstream.status, media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})

    async def embeddings(self, request: Request) -> Response:
        call = await self._admit(request, "embeddings")
        if isinstance(call, Response):
            return call
        target = call.decision.target
        assert target is not None
        started = time.perf_counter()
        try:
            upstream = await self.vendors[target.vendor].post("embeddings", target.model, self._outgoing(call))
        except UpstreamError as exc:
            return self._upstream_failed(call, exc, started)
        latency = int((time.perf_counter() - started) * 1e6)
        answer = wire.ChatAnswer()
        with contextlib.suppress(ValueError):
            answer = wire.embeddings_answer(upstream.json())
        return self._answer(call, upstream, self._outcome(
            call, answer, latency, None if upstream.ok else f"upstream status {upstream.status}"))

    async def models(self, request: Request) -> Response:
        try:
            principal = await self._principal(request)
        except AuthError as exc:
            return _error(401, exc.message, "authentication_error", "invalid_api_key")
        route = self.policies.current.route(request.path_params.get("route", "default"))
        if route is None or principal.role not in route.roles:
            return _error(403, "this route is not open to your role", "policy_denied")
        data = [{"id": f"{vendor}/{pattern}", "object": "model", "created": 0, "owned_by": vendor}
                for vendor, patterns in route.vendors.items() for pattern in patterns]
        return JSONResponse({"object": "list", "data": data})

    async def health(self, _request: Request) -> Response:
        """ok; degraded (200) while a policy file that failed to load leaves the last good policy in
        force (the operator's edit is not what governs); degraded (503) while evidence cannot be
        written (fail-closed routes refuse requests then)."""
        why = self.evidence.available()
        degraded = why is not None or self.policies.last_error is not None
        return JSONResponse({"status": "degraded" if degraded else "ok", "evidence": why or "available",
                             "policy_version": self.policies.current.version,
                             "policy_reload_error": self.policies.last_error}, 200 if why is None else 503)


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


class RequestId:
    """ASGI middleware: every response carries `X-Request-Id`. For a request that reached a
    decision it is the event_id of its record (`aiaudit query` finds the evidence of a call by
    it); otherwise (refused before that) a fresh id that the gateway's log line carries."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                rid = state.get("request_id") or str(uuid.uuid4())
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("ascii"))]
            await send(message)

        await self.app(scope, receive, send_with_id)


def _check_vendors(settings: Settings, config: GatewayConfig, policy: Policy) -> None:
    missing = [v for v in policy.bundle.vendors if v not in config.upstreams]
    if missing:
        raise PolicyError(f"{settings.gateway.policy_file}: vendors {', '.join(missing)} have no upstream "
                          f"in {settings.gateway.config_file}")


def check_files(settings: Settings) -> tuple[GatewayConfig, Policy]:
    """The deployment file and the policy read and checked as build_app reads them, nothing
    published (`gateway serve --workers N`'s parent: a bad file is one error, not one a worker).
    Raises ConfigError, PolicyError."""
    config = load_config(settings.gateway.config_file)
    path = settings.gateway.policy_file
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"policy {path}: {exc.strerror}") from exc
    policy = parse_policy(text, source=os.fspath(path))
    _check_vendors(settings, config, policy)
    return config, policy


def app_from_environment() -> Starlette:
    """One process of `gateway serve --workers N` (uvicorn calls this in each): the settings from
    the environment, as the parent read them. Each process has its own emitter (its own emitter id,
    numbered from 0), content keeper and vendor connections."""
    from aiaudit.pipeline.logs import configure

    configure(logging.DEBUG if os.environ.get(WORKER_VERBOSE) else logging.INFO, sys.stderr)
    return build_app(Settings())


def build_app(settings: Settings, evidence: Evidence | None = None) -> Starlette:
    """The ASGI app. Raises ConfigError/PolicyError for bad files, DeliveryFailed when the
    policy bundle cannot be published (nothing may run under a policy an auditor cannot fetch)."""
    config = load_config(settings.gateway.config_file)
    gw_id = settings.gateway.gateway_id or socket.gethostname()
    evidence = evidence or Evidence(settings, gw_id, max_unacked_s=settings.gateway.max_unacked_s)
    try:
        gw = Gateway(settings, config, evidence)
    except BaseException:
        evidence.close(5)
        raise
    routes = [Route("/healthz", gw.health)]
    for prefix in ("", "/r/{route}"):
        routes += [Route(f"{prefix}/v1/models", gw.models, methods=["GET"]),
                   Route(f"{prefix}/v1/chat/completions", gw.chat, methods=["POST"]),
                   Route(f"{prefix}/v1/embeddings", gw.embeddings, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=gw.lifespan, middleware=[Middleware(RequestId)])
    app.state.gateway = gw
    return app
