"""Reads of an embedded store, served by the process that holds it (the I/O edge).

Embedded chDB admits one process at a time, and the sink worker holds the store while it runs.
So the sink also answers read queries from the same machine: a small HTTP server on 127.0.0.1
(an ephemeral port) that runs SELECT statements with the sink's own client, under the lock the
sink's inserts take. Where to reach it is written to `<state dir>/store-api.json` (0600) with a
random token that names its principal (`local:<user>`): only the user who can read that file
(the one who runs the sink, and could read the store's folder anyway) can ask, and only as
`Authorization: Bearer <token>`. `store.connect` uses it when it finds the embedded store held
(RemoteClient below answers the few calls the store module makes), so `query`, `verify`,
`export`, `proof` and `alerts list` work while the pipeline runs.

Least privilege, in layers (`read_statement`, pure): a single SELECT, WITH or EXISTS statement,
no SETTINGS or FORMAT clause of its own, no INTO OUTFILE, no table function that reaches files,
URLs or other servers; then the engine runs it with `readonly=1` (no write, no DDL, no table
function, no setting changed) and the caps `ReadLimits` gives (rows, bytes, seconds), which a
statement cannot lift. Reads run on a client of their own, never under the sink's insert lock
(chDB serves one process, many clients of it concurrently).
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiaudit.pipeline.contract.access import OP, digest_of, statement_text
from aiaudit.pipeline.contract.access import encode_value as encode
from aiaudit.pipeline.errors import StoreError

log = logging.getLogger("aiaudit.store.api")

API_FILE = "store-api.json"
MAX_REQUEST_BYTES = 1 << 20
READ_ONLY = re.compile(r"\s*(SELECT|WITH|EXISTS)\b", re.IGNORECASE)
# Clauses a statement may not carry: its own settings (to lift readonly or the caps), its own output
# format, or a file written on the sink's host.
REFUSED_CLAUSES = re.compile(r"\b(SETTINGS|FORMAT|OUTFILE|INFILE|INSERT|ALTER|DROP|CREATE|DELETE|UPDATE|TRUNCATE|"
                             r"OPTIMIZE|RENAME|ATTACH|DETACH|GRANT|REVOKE|KILL)\b", re.IGNORECASE)
# Table functions that read files, URLs, other databases or programs: refused by name (readonly=1
# refuses them in the engine too). Harmless generators (numbers, values) stay allowed.
REFUSED_FUNCTIONS = re.compile(
    r"\b(file|fileCluster|url|urlCluster|s3|s3Cluster|gcs|hdfs|azureBlobStorage\w*|remote|remoteSecure|cluster\w*|"
    r"mysql|postgresql|mongodb|redis|sqlite|jdbc|odbc|executable|input|iceberg\w*|deltaLake\w*|hudi\w*|"
    r"python|arrowFlight|ytsaurus|dictionary|merge|view|loop)\s*\(", re.IGNORECASE)


@dataclass(frozen=True)
class ReadLimits:
    """Caps on one answer (settings: AIAUDIT_SINK__API_MAX_ROWS, _MAX_BYTES, _MAX_SECONDS)."""

    max_rows: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    max_seconds: int = 30


class Refused(ValueError):
    """A statement the store API does not run; the message says why."""


# Settings a statement may end with: how a join fills gaps, and when an aggregation or a sort spills
# to disk (verify's whole-store checks); nothing of what may be read, or how much.
TRAILING_SETTINGS = re.compile(r"\s+SETTINGS\s+([a-z_]+\s*=\s*\d{1,12}(?:\s*,\s*[a-z_]+\s*=\s*\d{1,12})*)\s*$",
                               re.IGNORECASE)
ALLOWED_SETTING = re.compile(r"(join_use_nulls=[01]|max_bytes_before_external_(group_by|sort)=\d{1,12}|"
                             r"max_bytes_ratio_before_external_(group_by|sort)=0)")


def read_statement(sql: object, limits: ReadLimits) -> str:
    """The statement as the engine runs it: `sql` checked, with the read-only setting and the caps
    appended. Raises Refused naming what is not allowed."""
    if not isinstance(sql, str) or not sql.strip():
        raise Refused("the statement is not a non-empty string")
    trailing = TRAILING_SETTINGS.search(sql)
    own = ""
    if trailing:
        pairs = [re.sub(r"\s+", "", p) for p in trailing.group(1).split(",")]
        if all(ALLOWED_SETTING.fullmatch(p) for p in pairs):
            sql, own = sql[:trailing.start()], "".join(", " + p for p in pairs)
    if not READ_ONLY.match(sql) or ";" in sql:
        raise Refused("only a single SELECT, WITH or EXISTS statement is served")
    if "--" in sql or "/*" in sql or "#" in sql:
        raise Refused("comments are not served (they could hide a clause from these checks)")
    found = REFUSED_CLAUSES.search(sql)
    if found:
        raise Refused(f"{found.group(1).upper()} is not served: reads only, and the store API sets the output, "
                      "the settings and where results go")
    found = REFUSED_FUNCTIONS.search(sql)
    if found:
        raise Refused(f"the table function {found.group(1)}() is not served: the store API reads the store only")
    return (f"{sql}\nSETTINGS readonly=1, max_result_rows={limits.max_rows}, max_result_bytes={limits.max_bytes}, "
            f"result_overflow_mode='throw', max_execution_time={limits.max_seconds}, timeout_overflow_mode='throw'{own}")


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None for any other shape."""
    if header is None or len(header) > 512:
        return None
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer" or not re.fullmatch(r"[A-Za-z0-9_\-]{20,256}", token):
        return None
    return token


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        (tag, text), = value.items()
        if tag == "b":
            return base64.b64decode(text)
        if tag == "t":
            return datetime.fromisoformat(text)
        if tag == "d":
            return date.fromisoformat(text)
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


class StoreServer:
    """Serve read queries on `client` (a client of its own: reads never wait for the sink's
    inserts) until close(). The token written to the API file names the principal `principal`
    (default local:<user>); each answer says which principal it served."""

    def __init__(self, client: Any, state_dir: Path, limits: ReadLimits = ReadLimits(),
                 principal: str | None = None, *, access: Any = None,
                 access_problem: str = "no access log") -> None:
        # `access` (store/access_log.AccessLog) records each read before it is answered; without it
        # (its key missing: `access_problem` says why) every read is refused: reads are recorded.
        self.client, self.limits, self.token = client, limits, secrets.token_urlsafe(32)
        self.access, self.access_problem = access, access_problem
        self.principal = principal or f"local:{getpass.getuser()}"
        self.principals = {_digest(self.token): self.principal}  # token digest -> who it names
        self.file = state_dir / API_FILE
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet: the sink logs its own progress
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _op(self) -> str:
                """What the reader says the read is for (query, export ...): recorded, never trusted."""
                op = self.headers.get("x-aiaudit-op") or "store-api"
                return op if OP.fullmatch(op) else "store-api"

            def do_POST(self) -> None:  # noqa: N802  # the http.server hook's name
                token = bearer(self.headers.get("authorization"))
                principal = server.principals.get(_digest(token)) if token else None
                if principal is None:
                    self._answer(401, {"error": "Authorization: Bearer <token> from the store API file required"})
                    return
                if self.path != "/query":
                    self._answer(404, {"error": "POST /query only"})
                    return
                declared = self.headers.get("content-length") or "0"
                length = int(declared) if declared.isdigit() else 0
                if not 0 < length <= MAX_REQUEST_BYTES:
                    self._answer(413, {"error": "request too large"})
                    return
                try:
                    req = json.loads(self.rfile.read(length))
                    sql, formats = req["sql"], req.get("formats")
                    params = {str(k): decode(v) for k, v in (req.get("params") or {}).items()}
                    statement = read_statement(sql, server.limits)
                except Refused as exc:  # a statement refused is recorded too: who tried to read what
                    if server.access is not None:
                        try:
                            server.access.record(op=self._op(), what=statement_text(str(sql), params), rows=0,
                                                 digest=digest_of([])[1], principal=principal, outcome="refused")
                        except StoreError as failed:
                            log.error("store API: a refused read by %s went unrecorded: %s", principal, failed)
                    self._answer(403, {"error": str(exc)})
                    return
                except Exception as exc:  # noqa: BLE001  # a malformed request of any shape is a 400
                    self._answer(400, {"error": f"malformed request: {type(exc).__name__}"})
                    return
                try:
                    result = server.client.query(statement, parameters=params, column_formats=formats)
                    columns, rows = list(result.column_names), result.result_rows
                except Exception as exc:  # noqa: BLE001  # any failure of the query goes back as its message
                    text = str(exc)
                    capped = "TOO_MANY_ROWS_OR_BYTES" in text or "TIMEOUT_EXCEEDED" in text
                    self._answer(413 if capped else 400, {"error": (
                        f"the answer is over the store API's caps ({server.limits.max_rows:,} rows, "
                        f"{server.limits.max_bytes:,} bytes, {server.limits.max_seconds} s): narrow the query, or "
                        "use `aiaudit export`" if capped else f"{type(exc).__name__}: {text}"[:2000])})
                    return
                op = self._op()
                if server.access is None:
                    self._answer(503, {"error": f"reads are recorded and this store API cannot record them: "
                                                f"{server.access_problem}"})
                    return
                count, digest = digest_of(rows)
                try:  # fail closed: no answer leaves that is not recorded first
                    server.access.record(op=op, what=statement_text(sql, params), rows=count, digest=digest,
                                         principal=principal)
                except StoreError as exc:
                    log.error("store API: a read by %s was refused: %s", principal, exc)
                    self._answer(503, {"error": str(exc)})
                    return
                log.debug("store API: %s read %d row(s)", principal, len(rows))
                self._answer(200, {"columns": columns, "rows": [[encode(v) for v in row] for row in rows],
                                   "principal": principal})

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, name="store-api", daemon=True)

    def start(self) -> None:
        self._thread.start()
        tmp = self.file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"url": f"http://127.0.0.1:{self._http.server_address[1]}", "token": self.token,
                       "pid": os.getpid()}, fh)
        tmp.replace(self.file)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.file.unlink()
        self._http.shutdown()
        self._http.server_close()


@dataclass
class _Result:
    column_names: list[str]
    result_rows: list[tuple[Any, ...]]


class RemoteClient:
    """The calls pipeline/store/client.py makes on a clickhouse-connect Client, answered by the
    process that holds the embedded store. Read-only: an insert is a StoreError."""

    def __init__(self, url: str, token: str, op: str = "store-api") -> None:
        self.url, self.token, self.op = url.rstrip("/"), token, op  # op: what the reads are for (recorded)

    @classmethod
    def find(cls, state_dir: Path, op: str = "store-api") -> "RemoteClient | None":
        try:
            doc = json.loads((state_dir / API_FILE).read_text())
            return cls(str(doc["url"]), str(doc["token"]), op)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def query(self, sql: str, parameters: dict[str, Any] | None = None,
              column_formats: dict[str, str] | None = None) -> _Result:
        body = json.dumps({"sql": sql, "params": {k: encode(v) for k, v in (parameters or {}).items()},
                           "formats": column_formats}).encode()
        req = urllib.request.Request(self.url + "/query", data=body, method="POST", headers={
            "authorization": f"Bearer {self.token}", "content-type": "application/json", "x-aiaudit-op": self.op})
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:  # noqa: S310  # 127.0.0.1, from our own file
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:2000].decode("utf-8", "replace")
            raise StoreError(f"the running sink refused the query ({exc.code}): {detail}") from exc
        except OSError as exc:
            raise StoreError(f"the running sink's store API at {self.url} does not answer: {exc}") from exc
        return _Result(list(doc["columns"]), [tuple(decode(v) for v in row) for row in doc["rows"]])

    @contextlib.contextmanager
    def query_row_block_stream(self, sql: str, parameters: dict[str, Any] | None = None,
                               column_formats: dict[str, str] | None = None) -> Iterator[Iterator[list[Any]]]:
        yield iter([self.query(sql, parameters, column_formats).result_rows])

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        rows = self.query(sql, parameters).result_rows
        return rows[0][0] if rows and len(rows[0]) == 1 else rows

    def insert(self, *args: Any, **kwargs: Any) -> None:
        raise StoreError("the store is held by the running sink and served read-only: stop the sink to write to it")

    def close(self) -> None:
        pass
