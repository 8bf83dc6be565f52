"""`aiaudit sql "SELECT …"`: one read-only statement on the store (ClickHouse SQL)."""

from __future__ import annotations

import argparse
import sys

from aiaudit.pipeline.cli.args import add_format
from aiaudit.pipeline.cli.output import print_rows
from aiaudit.pipeline.errors import ConfigError, StoreError
from aiaudit.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sql", help="run one read-only SQL statement on the store (ClickHouse SQL)",
                       description="One SELECT, WITH or EXISTS statement, read-only in the engine, capped "
                                   "(AIAUDIT_SINK__API_MAX_ROWS, _BYTES, _SECONDS): through the running sink on "
                                   "embedded chDB, or on the store itself. Tables: docs/sql.md.")
    p.add_argument("statement", help='e.g. "SELECT provider, count() FROM aiaudit.evidence GROUP BY provider"')
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Through the running sink's store API on embedded chDB, or on the store itself (a server or a
    chDB no sink holds) with the same checks: read-only in the engine, no table functions or
    settings of its own, capped."""
    from aiaudit.pipeline import store
    from aiaudit.pipeline.store.api import ReadLimits, Refused, RemoteClient, read_statement

    s = settings.sink
    limits = ReadLimits(s.api_max_rows, s.api_max_bytes, s.api_max_seconds)
    try:
        checked = read_statement(args.statement, limits)
    except Refused as exc:
        raise ConfigError(f"not served: {exc}") from exc
    client = store.open_reads(settings, "sql")
    statement = args.statement if isinstance(client, RemoteClient) else checked  # the sink checks it itself
    try:
        names, rows = store.query_rows(client, statement, {})
    except StoreError as exc:
        if "TOO_MANY_ROWS_OR_BYTES" in str(exc) or "TIMEOUT_EXCEEDED" in str(exc):
            raise StoreError(f"the answer is over the caps ({limits.max_rows:,} rows, {limits.max_bytes:,} bytes, "
                             f"{limits.max_seconds} s): narrow the query, or use `aiaudit export`") from None
        raise
    print_rows([dict(zip(names, row)) for row in rows], args.format)
    print(f"{len(rows)} row(s)", file=sys.stderr)
    return 0
