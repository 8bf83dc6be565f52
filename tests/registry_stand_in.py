"""A local stand-in for a Confluent schema registry (no real one can be installed here): the two
calls aiaudit uses, and the ways a registry fails. `stop()` takes it off the network (connections
are refused), `start()` brings it back on the same port with the schemas it had; `fail_with`
makes it answer every call with that HTTP status."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


class RegistryStandIn:
    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.fail_with: int | None = None
        self.calls = 0
        self.port = 0
        self._server: HTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "RegistryStandIn":
        self._server = HTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # POST /subjects/{subject}/versions
                registry.calls += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if registry.fail_with:
                    return self._reply(registry.fail_with, {"error_code": registry.fail_with * 100, "message": "failing"})
                for sid, text in registry.schemas.items():
                    if text == body["schema"]:
                        return self._reply(200, {"id": sid})
                sid = len(registry.schemas) + 1
                registry.schemas[sid] = body["schema"]
                self._reply(200, {"id": sid})

            def do_GET(self) -> None:  # GET /schemas/ids/{id}
                registry.calls += 1
                if registry.fail_with:
                    return self._reply(registry.fail_with, {"error_code": registry.fail_with * 100, "message": "failing"})
                sid = int(self.path.rsplit("/", 1)[1])
                if sid not in registry.schemas:
                    return self._reply(404, {"error_code": 40403, "message": "Schema not found"})
                self._reply(200, {"schema": registry.schemas[sid]})

        return Handler
