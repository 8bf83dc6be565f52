"""Reads of an embedded store, served by the process that holds it (the I/O edge).

Embedded chDB admits one process at a time, and the sink worker holds the store while it runs.
So the sink also answers read queries from the same machine: a small HTTP server on 127.0.0.1
(an ephemeral port) that runs SELECT statements with the sink's own client, under the lock the
sink's inserts take. Where to reach it is written to `<state dir>/store-api.json` (0600) with a
random token: only the user who can read that file (the one who runs the sink, and could read
the store's folder anyway) can ask. Statements other than a single SELECT/WITH/EXISTS are
refused. `store.connect` uses it when it finds the embedded store held (RemoteClient below
answers the few calls the store module makes), so `query`, `verify`, `export`, `proof` and
`alerts list` work while the pipeline runs.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
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

from pipeline.errors import StoreError

API_FILE = "store-api.json"
MAX_REQUEST_BYTES = 1 << 20
READ_ONLY = re.compile(r"\s*(SELECT|WITH|EXISTS)\b", re.IGNORECASE)


def encode(value: Any) -> Any:
    """A result or parameter value as JSON: bytes and times tagged, sequences as lists."""
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


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
    """Serve read queries on `client` (guarded by `lock`) until close()."""

    def __init__(self, client: Any, lock: threading.Lock, state_dir: Path) -> None:
        self.client, self.lock, self.token = client, lock, secrets.token_urlsafe(32)
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

            def do_POST(self) -> None:  # noqa: N802  # the http.server hook's name
                given = self.headers.get("authorization", "").removeprefix("Bearer ")
                if self.path != "/query" or not hmac.compare_digest(given.encode(), server.token.encode()):
                    self._answer(403, {"error": "not allowed"})
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
                    if not isinstance(sql, str) or not READ_ONLY.match(sql) or ";" in sql:
                        self._answer(403, {"error": "only a single SELECT, WITH or EXISTS statement is served"})
                        return
                    with server.lock:
                        result = server.client.query(sql, parameters=params, column_formats=formats)
                        columns, rows = list(result.column_names), result.result_rows
                except Exception as exc:  # noqa: BLE001  # any failure of the query goes back as its message
                    self._answer(400, {"error": f"{type(exc).__name__}: {exc}"[:2000]})
                    return
                self._answer(200, {"columns": columns, "rows": [[encode(v) for v in row] for row in rows]})

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

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token

    @classmethod
    def find(cls, state_dir: Path) -> "RemoteClient | None":
        try:
            doc = json.loads((state_dir / API_FILE).read_text())
            return cls(str(doc["url"]), str(doc["token"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def query(self, sql: str, parameters: dict[str, Any] | None = None,
              column_formats: dict[str, str] | None = None) -> _Result:
        body = json.dumps({"sql": sql, "params": {k: encode(v) for k, v in (parameters or {}).items()},
                           "formats": column_formats}).encode()
        req = urllib.request.Request(self.url + "/query", data=body, method="POST", headers={
            "authorization": f"Bearer {self.token}", "content-type": "application/json"})
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
