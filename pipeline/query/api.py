"""Python retrieval API over the evidence table."""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client

from pipeline import store
from pipeline.query.filters import DEFAULT_COLUMNS, Filters, select_records
from pipeline.settings import Settings


def find_records(client: Client, settings: Settings, filters: Filters,
                 columns: tuple[str, ...] = DEFAULT_COLUMNS) -> list[dict[str, Any]]:
    """Records matching `filters`, each (origin, seq) once, oldest first, as dicts."""
    sql, params = select_records(store.database(settings), filters, columns)
    names, rows = store.query_rows(client, sql, params)
    return [dict(zip(names, row)) for row in rows]
