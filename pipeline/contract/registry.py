"""A minimal Confluent schema-registry client (I/O edge): register a schema, resolve an id.

Two calls of the registry's REST API, over the standard library, so the SDK needs no extra
dependencies: POST /subjects/{subject}/versions and GET /schemas/ids/{id}.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import fastavro

from aiaudit.pipeline.errors import ConfigError, DependencyUnavailable, UnknownSchema

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
MAX_RESPONSE_BYTES = 1 << 20  # a schema document is small; refuse anything larger


class RegistryClient:
    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"schema registry URL {url!r} must be http(s)")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._cache: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310  # URL checked above
            doc = json.loads(resp.read(MAX_RESPONSE_BYTES))
        if not isinstance(doc, dict):
            raise ValueError(f"the registry answered {type(doc).__name__}, not a JSON object")
        return doc

    def register(self, subject: str, schema_text: str) -> int:
        """Register (or find) the schema under `subject`; returns its id. Raises ConfigError."""
        try:
            return int(self._call("POST", f"/subjects/{urllib.parse.quote(subject, safe='')}/versions",
                                  {"schema": schema_text, "schemaType": "AVRO"})["id"])
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"schema registry {self.url}: cannot register {subject}: {exc}") from exc

    def resolve(self, schema_id: int) -> Any:
        """The parsed writer schema of `schema_id` (cached).

        Raises UnknownSchema when the registry says the id does not exist or holds no Avro schema
        (bad input: dead-lettered), DependencyUnavailable when the registry cannot answer (retried).
        """
        with self._lock:
            if schema_id in self._cache:
                return self._cache[schema_id]
        try:
            doc = self._call("GET", f"/schemas/ids/{schema_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # the registry answered: no such id. The event is at fault.
                raise UnknownSchema(f"registry schema id {schema_id} does not exist (404 from {self.url})") from exc
            # 5xx, 401/403, 429 ...: the registry (or our access to it) is at fault, not the event.
            raise DependencyUnavailable(f"schema registry {self.url}: HTTP {exc.code} resolving id {schema_id}; "
                                        "retrying") from exc
        except (OSError, ValueError) as exc:  # refused, reset, timed out, or not a JSON answer
            raise DependencyUnavailable(f"schema registry {self.url} unreachable resolving id {schema_id}: "
                                        f"{exc}; retrying") from exc
        try:
            if doc.get("schemaType", "AVRO") != "AVRO":
                raise UnknownSchema(f"registry schema id {schema_id} is {doc['schemaType']}, not Avro")
            schema = fastavro.parse_schema(json.loads(doc["schema"]))
        except (ValueError, KeyError, TypeError, AttributeError, fastavro.schema.SchemaParseException) as exc:
            # The registry answered, and what it holds under this id is no Avro schema we can use.
            raise UnknownSchema(f"registry schema id {schema_id} is not a usable Avro schema: {exc}") from exc
        with self._lock:
            self._cache[schema_id] = schema
        return schema
