"""The console's Starlette app (`aiaudit console serve`): sign-in, pages, security headers, and an
access record for every page view.

Every page view is read, then recorded (an access record signed by the console's key for the person
signed in: `by` the person, `via` the console), then shown: a view whose record cannot be written is
refused (503), as every read of evidence is recorded. Every change (sign-in, sign-out, a status
change, a report) is a POST carrying the session's CSRF token, from this console's own origin.
An acknowledgement is a status change signed by the console's key for the person signed in.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from aiaudit.pipeline import metrics, store
from aiaudit.pipeline.console import reads, roles
from aiaudit.pipeline.console import reports as report_files
from aiaudit.pipeline.console.accounts import Accounts
from aiaudit.pipeline.console.sessions import Session, SessionStore
from aiaudit.pipeline.contract import format_ts
from aiaudit.pipeline.contract.access import digest_of
from aiaudit.pipeline.contract.analysts import StatusSigner
from aiaudit.pipeline.contract.schema import MAX_TEXT_CHARS
from aiaudit.pipeline.errors import AiAuditError, ConfigError, StoreError
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store.access_log import AccessLog, AccessNotRecorded
from aiaudit.pipeline.store.api import RemoteClient
from aiaudit.pipeline.store.filters import Filters
from aiaudit.pipeline.timespec import parse_time
from aiaudit.pipeline.verify.trust import Trust

log = logging.getLogger("aiaudit.console")

COOKIE = "aiaudit_session"
LOGIN_COOKIE = "aiaudit_login"  # the sign-in form's own CSRF token (double submit), before a session exists
MAX_FORM_BYTES = 64 * 1024
MAX_FIELD = 4096
STATUS_ACTIONS = {"ack": "acknowledged", "resolve": "resolved", "reopen": "open"}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # no-referrer would make the browser send `Origin: null` on our own forms
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}
MAX_VERSION = MAX_TEXT_CHARS  # a policy_version is a text field of the contract
RECORD_FIELDS = ("actor", "since", "until", "provider", "model", "policy_version", "decision", "classification",
                 "route", "event_id")


class Refused(Exception):
    """A request refused with a status and a message the page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _client(settings: Settings) -> Any:
    """The store for one page view: through the running sink on an embedded store (never holding the
    store itself, which would keep the sink from starting), or the ClickHouse server."""
    if settings.clickhouse_dsn().startswith("chdb://"):
        served = RemoteClient.find(settings.local.state_dir, "console")
        if served is None:
            raise StoreError("the store is not being served: on an embedded store the console reads through the "
                             "running sink (`aiaudit worker sink`, or `aiaudit up`)")
        return served
    return store.connect(settings, apply_ddl=False, must_exist=True, op="console")


def public_url(settings: Settings) -> str:
    """Where the browser reaches the console: AIAUDIT_CONSOLE__PUBLIC_URL, else http://host:port."""
    c = settings.console
    return (c.public_url or f"http://{c.host}:{c.port}").rstrip("/")


@contextlib.contextmanager
def _store(settings: Settings) -> Iterator[Any]:
    """The store for one piece of work (a page view, a status change, a report), closed after it."""
    client = _client(settings)
    try:
        yield client
    finally:
        client.close()


class Console:
    def __init__(self, settings: Settings, *, trust: Trust, signer: StatusSigner, operator: Any = None,
                 accounts: Accounts | None = None, oidc: Any = None, access: AccessLog | None = None) -> None:
        if not signer.console:
            raise ConfigError("the console signs for whom it serves: give it a console key "
                              "(`aiaudit keys analyst new NAME --console`), not an analyst's own")
        self.settings, self.trust, self.signer, self.operator = settings, trust, signer, operator
        self.accounts = accounts
        self.oidc = oidc
        self.access = access or AccessLog(settings, signer=signer)
        c = settings.console
        self.public_url = public_url(settings)
        self.secure = c.secure_cookies if c.secure_cookies is not None else self.public_url.startswith("https://")
        self.sessions = SessionStore(idle_s=c.session_idle_minutes * 60.0, max_s=c.session_max_hours * 3600.0)
        self.lag = reads.LagCache(settings)
        self.reports_dir = settings.local.state_dir / "console" / "reports"
        self._running: set[str] = set()  # the ids of the reports this process is making
        self.env = Environment(loader=PackageLoader("aiaudit.pipeline.console", "templates"),
                               autoescape=select_autoescape(default=True, default_for_string=True))
        self.env.filters["when"] = _when

    # --- plumbing --------------------------------------------------------------------------------

    def page(self, name: str, request: Request, session: Session | None, code: int = 200, **values: Any) -> Response:
        body = self.env.get_template(name).render(
            session=session, menu=roles.menu(session.roles) if session else [], path=request.url.path,
            can=(lambda what: session is not None and roles.can(session.roles, what)), console=self.signer.name,
            **values)
        return Response(body, status_code=code, media_type="text/html; charset=utf-8")

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def require(self, request: Request, what: str) -> Session:
        session = self.session_of(request)
        if session is None:
            raise Refused(401, "")
        if not roles.can(session.roles, what):
            raise Refused(403, f"your console role ({', '.join(session.roles)}) does not open this page")
        return session

    async def form(self, request: Request, session: Session | None) -> dict[str, str]:
        """The POSTed form (urlencoded, bounded), checked: this console's origin, and the CSRF token of
        the session (or of the sign-in form)."""
        origin = request.headers.get("origin")
        if origin is not None and origin.rstrip("/") != self.public_url:
            raise Refused(403, "a change must come from this console's own pages")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            raise Refused(415, "a form of application/x-www-form-urlencoded")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise Refused(413, "the form is too large")
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                                           max_num_fields=32)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Refused(400, "the form is not readable") from exc
        fields: dict[str, str] = {}
        for key, value in pairs:
            if key in fields or len(value) > MAX_FIELD:
                raise Refused(400, f"the form's field {key[:40]!r} is repeated or too long")
            fields[key] = value
        token = fields.get("csrf")
        if session is not None:
            if not self.sessions.csrf_ok(session, token):
                raise Refused(403, "the form's token is not this session's: reload the page and try again")
        else:
            cookie = request.cookies.get(LOGIN_COOKIE)
            if not cookie or not token or not secrets.compare_digest(cookie.encode()[:128], token.encode()[:128]):
                raise Refused(403, "the sign-in form's token does not match: reload the page and try again")
        return fields

    def record_view(self, request: Request, session: Session, rows: list[list[Any]]) -> None:
        """The access record of this page view, before it is shown. Raises Refused (503) when it
        cannot be written."""
        what = f"{request.method} {request.url.path}" + (f"?{request.url.query}" if request.url.query else "")
        count, digest = digest_of(rows)
        try:
            self.access.record(op="console", what=what[:MAX_FIELD], rows=count, digest=digest,
                               principal=session.person)
        except AccessNotRecorded as exc:
            log.error("console: a view by %s was refused: %s", session.person, exc)
            raise Refused(503, f"not shown: every read of evidence is recorded, and this one could not be ({exc})") \
                from exc

    async def read(self, request: Request, session: Session, fn: Callable[..., reads.Shown], *args: Any,
                   **kwargs: Any) -> reads.Shown:
        def run() -> reads.Shown:
            with _store(self.settings) as client:
                shown = fn(client, self.settings, *args, **kwargs)
            self.record_view(request, session, shown.rows)
            return shown
        return await run_in_threadpool(run)

    # --- sign-in ---------------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        resp = self.page("login.html", request, None, csrf=token, accounts=self.accounts is not None,
                         oidc=self.oidc is not None, error=request.query_params.get("error"))
        resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=self.secure, path="/",
                        max_age=1800)
        return resp

    async def login(self, request: Request) -> Response:
        fields = await self.form(request, None)
        name, password = fields.get("name", ""), fields.get("password", "")
        if self.accounts is None:
            raise Refused(404, "console accounts are off: sign in with your organisation's provider")
        if self.sessions.throttled(name):
            log.warning("console: sign-in of %r refused: too many failures", name[:128])
            return RedirectResponse("/login?error=wait", status_code=303)
        account = await run_in_threadpool(self.accounts.authenticate, name, password)
        if account is None:
            self.sessions.failed(name)
            log.warning("console: failed sign-in as %r", name[:128])
            return RedirectResponse("/login?error=failed", status_code=303)
        self.sessions.succeeded(name)
        return self.signed_in(f"account:{account.name}", (account.role,), "account")

    def signed_in(self, person: str, held: tuple[str, ...], via: str) -> Response:
        session_id, _ = self.sessions.create(person, held, via)
        log.info("console: %s signed in (%s, roles %s)", person, via, ", ".join(held))
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", secure=self.secure, path="/")
        resp.delete_cookie(LOGIN_COOKIE, path="/")
        return resp

    async def logout(self, request: Request) -> Response:
        session = self.session_of(request)
        if session is not None:
            await self.form(request, session)
        self.sessions.drop(request.cookies.get(COOKIE))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    # --- pages -----------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        session = self.require(request, "overview")
        lag = await run_in_threadpool(self.lag.get)
        shown = await self.read(request, session, reads.overview, lag)
        return self.page("overview.html", request, session, **shown.values)

    async def records(self, request: Request) -> Response:
        session = self.require(request, "records")
        q = request.query_params
        chosen = {k: q[k].strip() for k in RECORD_FIELDS if q.get(k, "").strip()}
        try:
            now = datetime.now(timezone.utc)
            times: dict[str, Any] = {k: parse_time(chosen[k], now) for k in ("since", "until") if k in chosen}
            given: dict[str, Any] = {**{k: v for k, v in chosen.items() if k not in times}, **times}
            filters = Filters(**given)
            before = reads.parse_cursor(q.get("before"))
        except (ConfigError, ValueError) as exc:
            return self.page("records.html", request, session, code=400, chosen=chosen, error=str(exc), records=[],
                             next=None)
        shown = await self.read(request, session, reads.records, filters, before)
        nxt = None
        if shown.values["next"]:
            nxt = "/records?" + urllib.parse.urlencode({**chosen, "before": shown.values["next"]})
        return self.page("records.html", request, session, chosen=chosen, error=None,
                         records=shown.values["records"], next=nxt)

    def _record_key(self, request: Request) -> tuple[str, int]:
        origin, seq = request.query_params.get("origin", ""), request.query_params.get("seq", "")
        if not 0 < len(origin) <= 256 or not seq.isdigit() or len(seq) > 20:
            raise Refused(400, "a record is named by its chain (origin) and its seq")
        return origin, int(seq)

    async def record(self, request: Request) -> Response:
        session = self.require(request, "records")
        origin, seq = self._record_key(request)
        shown = await self.read(request, session, reads.record, origin, seq, self.trust, self.operator)
        v = shown.values
        name = f"record-{_safe(origin)}-{seq}.jsonl"
        return self.page("record.html", request, session, **v, origin=origin, seq=seq, bundle_name=name,
                         bundle_url="/record/bundle?" + urllib.parse.urlencode({"origin": origin, "seq": seq}),
                         verify_command=f"aiaudit verify --export {name} --trust trust.json")

    async def record_bundle(self, request: Request) -> Response:
        session = self.require(request, "proof")
        origin, seq = self._record_key(request)
        shown = await self.read(request, session, reads.record, origin, seq, self.trust, self.operator)
        if shown.values["bundle"] is None:
            raise Refused(503, "this console has no operator key to seal a proof bundle with: make one with "
                               f"`aiaudit export --origin {origin} --event-id {shown.values['record']['event_id']}`")
        return Response(shown.values["bundle"], media_type="application/x-ndjson", headers={
            "content-disposition": f'attachment; filename="record-{_safe(origin)}-{seq}.jsonl"'})

    async def incidents(self, request: Request) -> Response:
        session = self.require(request, "incidents")
        status = request.query_params.get("status") or None
        severity = request.query_params.get("severity") or None
        if status not in (None, "open", "acknowledged", "resolved") or severity not in (None, "medium", "high",
                                                                                          "critical"):
            raise Refused(400, "status open|acknowledged|resolved; severity medium|high|critical")
        shown = await self.read(request, session, reads.incidents, status, severity)
        return self.page("incidents.html", request, session, status=status, severity=severity, **shown.values)

    async def incident(self, request: Request) -> Response:
        session = self.require(request, "incidents")
        uid = request.query_params.get("uid", "")
        shown = await self.read(request, session, reads.incident, uid)
        return self.page("incident.html", request, session, sent=request.query_params.get("sent"), **shown.values)

    async def incident_status(self, request: Request) -> Response:
        session = self.require(request, "incident_change")
        fields = await self.form(request, session)
        uid, action, note = fields.get("uid", ""), fields.get("action", ""), fields.get("note", "")
        if action not in STATUS_ACTIONS:
            raise Refused(400, "ack, resolve or reopen")
        from aiaudit.pipeline.query.incidents import set_incident_status

        await self.send_status(set_incident_status, "incident", uid, STATUS_ACTIONS[action], note, session)
        return RedirectResponse("/incident?" + urllib.parse.urlencode({"uid": uid, "sent": STATUS_ACTIONS[action]}),
                                status_code=303)

    async def send_status(self, change: Callable[..., object], what: str, uid: str, status: str, note: str,
                          session: Session) -> None:
        """A status change signed by the console's key for the person signed in (`change`: the
        CLI's own, query/incidents.py or query/alerts.py), checked to exist first."""
        def send() -> None:
            with _store(self.settings) as client:
                change(self.settings, uid, status, signer=self.signer, by=session.person, note=note, client=client)
        await run_in_threadpool(send)
        log.info("console: %s set %s %s %s", session.person, what, uid[:64], status)

    async def alerts(self, request: Request) -> Response:
        session = self.require(request, "incidents")
        q = request.query_params
        status, severity = q.get("status") or None, q.get("severity") or None
        actor, group_by = (q.get("actor") or "").strip() or None, q.get("group_by") or None
        if status not in (None, "open", "acknowledged", "resolved") or severity not in (None, "medium", "high",
                                                                                          "critical") \
                or group_by not in (None, "actor", "detectors", "severity", "status", "model") \
                or (actor is not None and len(actor) > 256):
            raise Refused(400, "status open|acknowledged|resolved; severity medium|high|critical; "
                               "group by actor|detectors|severity|status|model; an identity of at most 256 characters")
        shown = await self.read(request, session, reads.alerts, status=status, severity=severity, actor=actor,
                                group_by=group_by)
        return self.page("alerts.html", request, session, status=status, severity=severity, actor=actor,
                         group_by=group_by, sent=q.get("sent"), **shown.values)

    async def alert_status(self, request: Request) -> Response:
        session = self.require(request, "incident_change")
        fields = await self.form(request, session)
        uid, action = fields.get("uid", ""), fields.get("action", "")
        if action not in STATUS_ACTIONS or not 0 < len(uid) <= 128:
            raise Refused(400, "ack, resolve or reopen an alert by its uid")
        from aiaudit.pipeline.query.alerts import set_status

        await self.send_status(set_status, "alert", uid, STATUS_ACTIONS[action], fields.get("note", ""), session)
        return RedirectResponse("/alerts?" + urllib.parse.urlencode({"sent": STATUS_ACTIONS[action]}), status_code=303)

    async def policies(self, request: Request) -> Response:
        session = self.require(request, "policies")
        shown = await self.read(request, session, reads.policies)
        return self.page("policies.html", request, session, **shown.values)

    async def policy(self, request: Request) -> Response:
        session = self.require(request, "policies")
        version = request.query_params.get("version", "")
        against = request.query_params.get("against") or None
        if not 0 < len(version) <= MAX_VERSION or (against is not None and len(against) > MAX_VERSION):
            raise Refused(400, "a policy is named by its version (policy_version)")
        shown = await self.read(request, session, reads.policy, version, against)
        return self.page("policy.html", request, session, **shown.values)

    async def access_page(self, request: Request) -> Response:
        session = self.require(request, "access")
        principal = request.query_params.get("principal") or None
        if principal is not None and len(principal) > 256:
            raise Refused(400, "a principal has at most 256 characters")
        shown = await self.read(request, session, reads.access_records, principal)
        return self.page("access.html", request, session, principal=principal, **shown.values)

    async def keys(self, request: Request) -> Response:
        session = self.require(request, "keys")
        return self.page("keys.html", request, session, trust=reads.trust_summary(self.trust),
                         console_kid=self.signer.key.kid, operator=self.operator is not None)

    # --- reports ---------------------------------------------------------------------------------

    async def reports_page(self, request: Request) -> Response:
        session = self.require(request, "reports")
        return self.page("reports.html", request, session, reports=report_files.listed(self.reports_dir, self._running),
                         operator=self.operator is not None, error=request.query_params.get("error"))

    async def make_report(self, request: Request) -> Response:
        session = self.require(request, "reports")
        fields = await self.form(request, session)
        if self.operator is None:
            raise Refused(503, "this console has no operator key to seal a report with")
        try:
            now = datetime.now(timezone.utc)
            since, until = parse_time(fields.get("since", ""), now), parse_time(fields.get("until", ""), now)
            if since >= until:
                raise ConfigError("the period's start must be before its end")
        except (ConfigError, ValueError) as exc:
            return RedirectResponse("/reports?" + urllib.parse.urlencode({"error": str(exc)[:200]}), status_code=303)
        now = datetime.now(timezone.utc)
        report_id = f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
        status = report_files.Status.start(
            self.reports_dir / report_id, since=format_ts(since), until=format_ts(until), by=session.person,
            started=format_ts(now), message="collecting the period's records")
        self._running.add(report_id)
        threading.Thread(target=self._write_report, args=(report_id, status, since, until, session),
                         name=f"report-{report_id}", daemon=True).start()
        return RedirectResponse("/reports", status_code=303)

    def _write_report(self, report_id: str, status: report_files.Status, since: datetime, until: datetime,
                      session: Session) -> None:
        from aiaudit.pipeline.report.pack import write_report

        try:
            with _store(self.settings) as client:
                report = write_report(client, self.settings, status.folder, since=since, until=until, scope={},
                                      operator=self.operator, now=datetime.now(timezone.utc),
                                      progress=status.progress)
            figures = report["figures"]
            rows = [[figures["requests"]["total"], figures["integrity"]["records_in_period"]]]
            self.access.record(op="console", what=f"report {status.doc['since']} .. {status.doc['until']}",
                               rows=len(rows), digest=digest_of(rows)[1], principal=session.person)
            status.finish("done", f"{figures['requests']['total']:,} request(s); check it with aiaudit verify "
                                  f"--report {report_id}")
        except Exception as exc:  # noqa: BLE001  # whatever stops it is on the page, never "running" forever
            status.finish("failed", str(exc) if isinstance(exc, (AiAuditError, OSError))
                          else f"{type(exc).__name__} (the console's log has the details)")
            log.exception("console: report %s failed", report_id)
        finally:
            self._running.discard(report_id)

    async def report_file(self, request: Request) -> Response:
        session = self.require(request, "reports")
        report_id, name = request.path_params["report_id"], request.path_params["name"]
        if not report_files.REPORT_ID.fullmatch(report_id) or name not in report_files.FILES:
            raise Refused(404, "no such report file")
        path = self.reports_dir / report_id / name
        if not path.is_file():
            raise Refused(404, "no such report file")
        self.record_view(request, session, [[report_id, name, path.stat().st_size]])
        media = {"html": "text/html", "json": "application/json", "jsonl": "application/x-ndjson",
                 "pdf": "application/pdf"}[name.rsplit(".", 1)[1]]
        return FileResponse(path, media_type=media, filename=f"{report_id}-{name}",
                            content_disposition_type="attachment")

    # --- the app ---------------------------------------------------------------------------------

    def app(self) -> Starlette:
        def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
            page = handler.__name__[:40]  # a handler's name: a bounded label

            async def run(request: Request) -> Response:
                started = time.perf_counter()
                try:
                    response = await handler(request)
                except Refused as exc:
                    if exc.status == 401:
                        response = RedirectResponse("/login", status_code=303)
                    else:
                        response = self.page("error.html", request, self.session_of(request), code=exc.status,
                                             message=exc.message)
                except (ConfigError, StoreError) as exc:
                    status = 400 if isinstance(exc, ConfigError) else 503
                    response = self.page("error.html", request, self.session_of(request), code=status,
                                         message=str(exc))
                response.headers.update(SECURITY_HEADERS)
                metrics.CONSOLE_VIEWS.labels(page, str(response.status_code)).inc()
                metrics.CONSOLE_SECONDS.labels(page).observe(time.perf_counter() - started)
                return response
            return run

        routes = [
            Route("/login", guarded(self.login_page), methods=["GET"]),
            Route("/login", guarded(self.login), methods=["POST"]),
            Route("/logout", guarded(self.logout), methods=["POST"]),
            Route("/", guarded(self.overview), methods=["GET"]),
            Route("/records", guarded(self.records), methods=["GET"]),
            Route("/record", guarded(self.record), methods=["GET"]),
            Route("/record/bundle", guarded(self.record_bundle), methods=["GET"]),
            Route("/incidents", guarded(self.incidents), methods=["GET"]),
            Route("/incident", guarded(self.incident), methods=["GET"]),
            Route("/incident/status", guarded(self.incident_status), methods=["POST"]),
            Route("/alerts", guarded(self.alerts), methods=["GET"]),
            Route("/alert/status", guarded(self.alert_status), methods=["POST"]),
            Route("/policies", guarded(self.policies), methods=["GET"]),
            Route("/policy", guarded(self.policy), methods=["GET"]),
            Route("/reports", guarded(self.reports_page), methods=["GET"]),
            Route("/reports", guarded(self.make_report), methods=["POST"]),
            Route("/reports/{report_id}/{name}", guarded(self.report_file), methods=["GET"]),
            Route("/keys", guarded(self.keys), methods=["GET"]),
            Route("/access", guarded(self.access_page), methods=["GET"]),
            Route("/healthz", lambda _r: PlainTextResponse("ok"), methods=["GET"]),
            Mount("/static", StaticFiles(packages=[("aiaudit.pipeline.console", "static")]), name="static"),
        ]
        if self.oidc is not None:
            routes += self.oidc.routes(self, guarded)

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            yield
            self.access.close()
        return Starlette(routes=routes, lifespan=lifespan)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


def _when(value: Any) -> str:
    """A time as the page shows it: UTC, to the second."""
    if isinstance(value, datetime):
        moment: datetime = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value) if value is not None else ""  # escaped by the template
