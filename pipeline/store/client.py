"""ClickHouse through clickhouse-connect (I/O edge): embedded chDB (chdb:///path) or any server by DSN.

The one place ClickHouse is called: clickhouse-connect's errors (and the OSError of a server
that does not answer) become StoreError here, once.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, cast

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from clickhouse_connect.driver.insert import InsertContext

from aiaudit.pipeline.errors import ConfigError, StoreError
from aiaudit.pipeline.names import EVIDENCE_TABLE
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store.api import RemoteClient

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def database(settings: Settings) -> str:
    db = settings.clickhouse.database
    if not _IDENT.match(db):
        raise ConfigError(f"ClickHouse database name {db!r} must be a plain identifier")
    return db


def ddl_statements(db: str) -> list[str]:
    text = resources.files("aiaudit.infra").joinpath("clickhouse/ddl.sql").read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip().replace("{db}", db) for s in text.split(";") if s.strip()]


NATIVE_PORTS = (9000, 9440)  # ClickHouse's native TCP protocol; clickhouse-connect speaks HTTP (8123/8443)


def check_dsn(dsn: str) -> None:
    """Refuse a DSN that clickhouse-connect would quietly read as something else (`garbage`
    becomes localhost:8123; a native-protocol port hangs or fails obscurely). Raises ConfigError."""
    shown = re.sub(r"//[^@/]*@", "//***@", dsn)[:200]
    try:
        parts = urllib.parse.urlsplit(dsn)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"ClickHouse DSN {shown!r}: {exc}") from exc
    if parts.scheme == "chdb":
        if parts.netloc or not parts.path.startswith("/"):
            raise ConfigError(f"ClickHouse DSN {shown!r}: an embedded store is chdb:// and an absolute path, "
                              "e.g. chdb:///var/lib/aiaudit/chdb")
        return
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"ClickHouse DSN {shown!r} is neither chdb:///absolute/path nor http(s)://host:port/database")
    if port in NATIVE_PORTS:
        raise ConfigError(f"ClickHouse DSN {shown!r}: port {port} is ClickHouse's native protocol; aiaudit speaks "
                          f"HTTP: use port {8443 if parts.scheme == 'https' else 8123}")


def _served(client: RemoteClient, settings: Settings, missing: str) -> Client:
    """The store as the running sink serves it (read-only), checked like a local one."""
    if str(client.command(f"EXISTS TABLE {database(settings)}.{EVIDENCE_TABLE}")).strip() != "1":
        raise StoreError(missing)
    return cast(Client, client)  # duck-typed: the subset of Client the readers call (store/api.py)


def connect(settings: Settings, *, apply_ddl: bool = True, must_exist: bool = False, op: str = "store-api") -> Client:
    """Open the configured store and create the schema if missing.

    With must_exist (every reader: query, verify, export, proofs, alerts), a store this project
    never wrote is an error, not an empty answer: a mistyped DSN or database must not look like
    "no records"; and an embedded store held by the running sink is read through the sink
    (pipeline/store/api.py), read-only. Raises StoreError with what to do, e.g. when another process holds the chDB folder.
    """
    dsn = settings.clickhouse_dsn()
    check_dsn(dsn)
    shown = re.sub(r"//[^@/]*@", "//***@", dsn)
    missing = (f"no aiaudit store at {shown} (database {database(settings)}): nothing was ever written there. "
               "Check AIAUDIT_CLICKHOUSE__DSN and AIAUDIT_CLICKHOUSE__DATABASE; the sink worker creates the store")
    if must_exist and dsn.startswith("chdb://") and not Path(urllib.parse.urlsplit(dsn).path).exists():
        raise StoreError(missing)  # and do not create the folder by opening it
    if must_exist and dsn.startswith("chdb://"):
        served = RemoteClient.find(settings.local.state_dir, op)
        if served is not None:  # a running sink holds the store: read through it (a stale file: open it here)
            try:
                return _served(served, settings, missing)
            except StoreError as exc:
                if missing in str(exc):
                    raise
    try:
        if dsn.startswith("chdb://"):
            client = clickhouse_connect.get_client(dsn=dsn)
        else:
            client = clickhouse_connect.get_client(dsn=dsn, connect_timeout=10, send_receive_timeout=120)
    except (ClickHouseError, OSError) as exc:
        hint = ""
        if dsn.startswith("chdb://") and "EmbeddedServer" in str(exc):
            hint = " (embedded chDB admits one process at a time: stop the sink worker, or use a ClickHouse server DSN)"
        raise StoreError(f"cannot open ClickHouse at {shown}{hint}: {exc}") from exc
    if must_exist:
        try:
            exists = client.command(f"EXISTS TABLE {database(settings)}.{EVIDENCE_TABLE}")
        except ClickHouseError as exc:
            raise StoreError(f"cannot read ClickHouse at {shown}: {exc}") from exc
        if str(exists).strip() != "1":
            client.close()
            raise StoreError(missing)
    if apply_ddl:
        try:
            for stmt in ddl_statements(database(settings)):
                client.command(stmt)
        except ClickHouseError as exc:
            raise StoreError(f"creating the aiaudit tables at {shown} failed: {exc}") from exc
    return client


def query_rows(client: Client, sql: str, parameters: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run a parameterised query; returns (column names, rows)."""
    try:
        result = client.query(sql, parameters=parameters)
    except (ClickHouseError, OSError) as exc:
        raise StoreError(f"query failed: {exc}") from exc
    return list(result.column_names), [tuple(row) for row in result.result_rows]


def stream_rows(client: Client, sql: str, parameters: dict[str, Any],
                column_formats: dict[str, str | dict[str, str]] | None = None) -> Iterator[Sequence[Any]]:
    """Yield rows of a parameterised query block by block (for verification of long chains).
    column_formats {"payload": "bytes"} hands a column back as its stored bytes (see evidence.BYTES)."""
    try:
        # Whole blocks, then their rows: half the per-row cost of query_rows_stream (measured, chDB).
        with client.query_row_block_stream(sql, parameters=parameters, column_formats=column_formats) as stream:
            for block in stream:
                yield from block
    except (ClickHouseError, OSError) as exc:
        raise StoreError(f"query failed: {exc}") from exc


def insert(client: Client, table: str, rows: list[list[Any]], columns: tuple[str, ...]) -> None:
    """Insert rows into `table` (database-qualified), once. Raises StoreError. A process that
    inserts again and again (the sink) uses an Inserter."""
    Inserter(client).insert(table, rows, columns)


class Inserter:
    """Inserts into tables through one client, each table's insert context made once and reused.

    clickhouse-connect asks for a table's column types each time it makes an insert context, and a
    context refers to itself (its next-block method): one made per insert is a reference cycle that
    holds the batch's rows until Python's cyclic collector runs, which the sink runs only every few
    seconds (pipeline/collector.py). A context that failed is dropped (the table may have changed)
    and made again on the next insert. The last batch of each table stays referenced by its
    context until the next one."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._contexts: dict[tuple[str, tuple[str, ...]], InsertContext] = {}

    def insert(self, table: str, rows: list[list[Any]], columns: tuple[str, ...]) -> None:
        """Insert rows into `table` (database-qualified). Raises StoreError."""
        key = (table, columns)
        try:
            context = self._contexts.get(key)
            if context is None:
                context = self._contexts[key] = self._client.create_insert_context(table, column_names=list(columns))
            context.data = rows
            try:
                self._client.insert(context=context)
            finally:
                context.data = None
        except (ClickHouseError, OSError) as exc:
            self._contexts.pop(key, None)
            raise StoreError(f"inserting {len(rows)} row(s) into {table} failed: {exc}") from exc
