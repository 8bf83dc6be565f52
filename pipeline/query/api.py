"""Python retrieval API over the evidence and policies tables."""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client

from aiaudit.pipeline import store
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import evidence, policies
from aiaudit.pipeline.store.filters import Filters


def find_records(client: Client, settings: Settings, filters: Filters,
                 columns: tuple[str, ...] = evidence.DEFAULT_COLUMNS) -> list[dict[str, Any]]:
    """Records matching `filters`, each (origin, seq) once, oldest first, as dicts."""
    sql, params = evidence.select_records(store.database(settings), filters, columns)
    names, rows = store.query_rows(client, sql, params)
    return [dict(zip(names, row)) for row in rows]


def policy_bundle(settings: Settings, policy_version: str, client: Client | None = None) -> dict[str, Any] | None:
    """The policy bundle a record's `policy_version` names (as first loaded), or None if never published."""
    own = client is None
    client = client or store.open_reads(settings, "policy")  # read through the sink while it holds the store
    try:
        names, rows = store.query_rows(client, *policies.select_bundle(store.database(settings), policy_version))
    finally:
        if own:
            client.close()
    return dict(zip(names, rows[0])) if rows else None


def policies_in_force(client: Client, settings: Settings) -> list[dict[str, Any]]:
    """Each policy version: first/last decision under it, decisions, first loaded by a gateway."""
    names, rows = store.query_rows(client, *policies.select_in_force(store.database(settings)))
    return [dict(zip(names, row)) for row in rows]



def policy_versions(client: Client, settings: Settings, policy_id: str | None = None) -> list[dict[str, Any]]:
    """Each published version of a policy (or of every policy) as first loaded, oldest first."""
    names, rows = store.query_rows(client, *policies.select_versions(store.database(settings), policy_id))
    return [dict(zip(names, row)) for row in rows]
