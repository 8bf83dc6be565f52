"""Reads of evidence recorded as they are served (the I/O edge of pipeline/contract/access.py).

Every read through aiaudit writes an access record to the access topic, signed by the process that
served it, before the result is handed on; the access chain worker chains it and the sink stores
it (access_log). Two places serve reads:

- the sink's store API (store/api.py), for an embedded store the sink holds: it records each
  statement before it answers, and refuses to answer when it cannot record (fail closed);
- the CLI itself, when it opens the store directly (a ClickHouse server, or an embedded store no
  sink holds): `open_reads` wraps the client so that each statement is recorded, and the command
  fails, before it prints or keeps anything, when a record cannot be written.

The signing key is signing.reader_key_file (a console key: it signs for whom the process serves),
else signing.analyst_key_file (an analyst's own: it signs for that analyst). Offline `verify
--export` reads a file, not the store, and writes no record.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import socket
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import orjson
from clickhouse_connect.driver.client import Client
from confluent_kafka import KafkaError, KafkaException, Producer

from aiaudit.pipeline.contract.access import ResultDigest, access_message, statement_text
from aiaudit.pipeline.contract.analyst_keys import ANALYSTS_DIR, CONSOLE_SUFFIX, load_status_signer
from aiaudit.pipeline.contract.analysts import ACCESS_SIG_DOMAIN, StatusSigner
from aiaudit.pipeline.errors import SigningKeyError, StoreError
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.settings import Settings

log = logging.getLogger("aiaudit.access")

LOCAL_READER = "local-reader"  # this host's serving key, found when no key is set (`aiaudit keys analyst new local-reader --console`)
NO_KEY = ("reads of evidence through aiaudit are recorded and signed, and this process has no key to sign "
          "them with: set AIAUDIT_SIGNING__ANALYST_KEY_FILE to your key (`aiaudit keys analyst new NAME`), "
          "AIAUDIT_SIGNING__READER_KEY_FILE to a serving process's key (`aiaudit keys analyst new NAME --console`), "
          f"or make this host's reader key (`aiaudit keys analyst new {LOCAL_READER} --console`)")


class AccessNotRecorded(StoreError):
    """The read was not served: its access record could not be written."""


def reader_key(settings: Settings) -> Path | None:
    """signing.reader_key_file, else signing.analyst_key_file, else this host's local-reader console
    key in <keys_dir>/analysts (the newest), else None."""
    explicit = settings.signing.reader_key_file or settings.signing.analyst_key_file
    if explicit is not None:
        return explicit
    folder = settings.signing.keys_dir / ANALYSTS_DIR
    found = sorted(folder.glob(f"{LOCAL_READER}.*{CONSOLE_SUFFIX}"), key=lambda p: p.stat().st_mtime) \
        if folder.is_dir() else []
    return found[-1] if found else None


def local_principal() -> str:
    return f"local:{getpass.getuser()}"


class AccessLog:
    """Writes signed access records to the access topic, each acknowledged by the broker before
    `record` returns. Raises AccessNotRecorded (no key, a key that does not load, a broker that
    does not take the record)."""

    def __init__(self, settings: Settings, *, signer: StatusSigner | None = None, timeout_s: float = 15.0) -> None:
        self.settings, self.timeout_s = settings, timeout_s
        self.host = socket.gethostname()
        if signer is None:
            path = reader_key(settings)
            if path is None:
                raise AccessNotRecorded(NO_KEY)
            try:
                signer = load_status_signer(path)
            except (SigningKeyError, OSError, ValueError) as exc:
                raise AccessNotRecorded(f"the reader key {path} does not load ({exc}): reads are refused") from exc
        self.signer = signer
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def _producer_now(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(kafka_config.producer(self.settings, **{"message.timeout.ms": int(
                self.timeout_s * 1000)}))
        return self._producer

    def record(self, *, op: str, what: str, rows: int, digest: str, principal: str | None = None,
               outcome: str = "served") -> dict[str, Any]:
        """Sign and write one access record; returns it once the broker holds it. `principal` is who
        a console key serves (default local:<user>); an analyst's key signs for its analyst only."""
        body = access_message(op=op, what=what, rows=rows, digest=digest, outcome=outcome, host=self.host,
                              at=datetime.now(timezone.utc))
        by = (principal or local_principal()) if self.signer.console else None
        doc = self.signer.sign(body, by=by, domain=ACCESS_SIG_DOMAIN)
        errors: list[KafkaError] = []
        with self._lock:
            producer = self._producer_now()
            try:
                producer.produce(self.settings.kafka.access_topic, key=str(doc["by"]).encode(),
                                 value=orjson.dumps(doc), on_delivery=lambda err, _m: errors.append(err) if err else None)
            except (BufferError, KafkaException, ValueError) as exc:
                raise AccessNotRecorded(f"the access record was not written ({exc}): the read is refused") from exc
            left = producer.flush(self.timeout_s)
        if left or errors:
            why = errors[0].str() if errors else f"no answer from {self.settings.kafka.bootstrap_servers} in {self.timeout_s:.0f} s"
            raise AccessNotRecorded(f"the access record was not written ({why}): the read is refused, as every read "
                                    "of evidence is recorded")
        return doc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout_s)


class RecordedClient:
    """A clickhouse-connect client whose every read is recorded (the calls the store modules make)."""

    def __init__(self, client: Client, access: AccessLog, op: str) -> None:
        self._client, self.access, self.op = client, access, op

    def query(self, sql: str, parameters: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        result = self._client.query(sql, parameters=parameters, **kwargs)
        digest = ResultDigest()
        digest.add(result.result_rows)
        self.access.record(op=self.op, what=statement_text(sql, parameters), rows=digest.rows, digest=digest.text())
        return result

    @contextlib.contextmanager
    def query_row_block_stream(self, sql: str, parameters: dict[str, Any] | None = None,
                               **kwargs: Any) -> Iterator[Iterator[Sequence[Any]]]:
        digest = ResultDigest()

        def blocks(stream: Any) -> Iterator[Sequence[Any]]:
            for block in stream:
                digest.add(block)
                yield block
        with self._client.query_row_block_stream(sql, parameters=parameters, **kwargs) as stream:
            yield blocks(stream)
        # A stream is recorded when it ends, before the command it feeds prints or keeps anything.
        self.access.record(op=self.op, what=statement_text(sql, parameters), rows=digest.rows, digest=digest.text())

    def command(self, sql: str, parameters: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        answer = self._client.command(sql, parameters=parameters, **kwargs)
        rows, digest = 1, ResultDigest()
        digest.add([[answer]] if not isinstance(answer, list) else [answer])
        self.access.record(op=self.op, what=statement_text(sql, parameters), rows=rows, digest=digest.text())
        return answer

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        return self._client.insert(*args, **kwargs)  # writes are not reads (the witness submitter's cosignatures)

    def close(self) -> None:
        self.access.close()
        self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def open_reads(settings: Settings, op: str) -> Client:
    """The store, opened for reading evidence as `op` (query, export, verify ...): every statement
    is recorded. Through the running sink's store API, the sink records it (its principal is the
    token's); opened here, this process records it with its reader key, and refuses to read
    without one. Raises StoreError (AccessNotRecorded when the read cannot be recorded)."""
    from aiaudit.pipeline.store.api import RemoteClient
    from aiaudit.pipeline.store.client import connect

    client = connect(settings, must_exist=True, op=op)
    if isinstance(client, RemoteClient):
        return cast(Client, client)
    try:
        access = AccessLog(settings)
    except AccessNotRecorded:
        client.close()
        raise
    return cast(Client, RecordedClient(client, access, op))
