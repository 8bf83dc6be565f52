"""The registry client against a local HTTP server that speaks the two registry calls we use (a
stand-in: no real Confluent registry can be installed here), including the registry failing."""

from __future__ import annotations

import io
import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import fastavro
import pytest

from pipeline import contract
from pipeline.contract.registry import RegistryClient
from pipeline.emit.synthetic import SyntheticEvents
from pipeline.errors import InvalidEvent, UnknownSchema

MAX = 256 * 1024


class _Registry(BaseHTTPRequestHandler):
    schemas: dict[int, str] = {}

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
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        for sid, text in self.schemas.items():
            if text == body["schema"]:
                return self._reply(200, {"id": sid})
        sid = len(self.schemas) + 1
        self.schemas[sid] = body["schema"]
        self._reply(200, {"id": sid})

    def do_GET(self) -> None:  # GET /schemas/ids/{id}
        sid = int(self.path.rsplit("/", 1)[1])
        if sid not in self.schemas:
            return self._reply(404, {"error_code": 40403, "message": "Schema not found"})
        self._reply(200, {"schema": self.schemas[sid]})


@pytest.fixture
def registry_url():
    _Registry.schemas = {}
    server = HTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def event() -> dict:
    return SyntheticEvents(4, datetime(2026, 11, 28, tzinfo=timezone.utc), "reg").next_event()


def test_registry_framing_round_trip(registry_url):
    client = RegistryClient(registry_url)
    sid = client.register("AIRequest-value", contract.schema_text())
    assert client.register("AIRequest-value", contract.schema_text()) == sid  # idempotent
    data = contract.encode(event(), max_bytes=MAX, schema_id=sid)
    out = contract.decode(data, max_bytes=MAX, resolve=RegistryClient(registry_url).resolve)
    assert out["event_id"] == event()["event_id"]


def test_unknown_registry_id_is_unknown_schema(registry_url):
    data = contract.frame_confluent(99, contract.encode_datum(event()))
    with pytest.raises(UnknownSchema, match="404"):
        contract.decode(data, max_bytes=MAX, resolve=RegistryClient(registry_url).resolve)


def test_writer_schema_missing_a_required_field_is_invalid(registry_url):
    # An emitter built against a schema without policy_version: Avro resolution refuses it.
    schema = json.loads(contract.schema_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "policy_version"]
    client = RegistryClient(registry_url)
    sid = client.register("AIRequest-value", json.dumps(schema))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), {k: v for k, v in event().items() if k != "policy_version"})
    with pytest.raises(InvalidEvent, match="policy_version"):
        contract.decode(contract.frame_confluent(sid, buf.getvalue()), max_bytes=MAX, resolve=client.resolve)
