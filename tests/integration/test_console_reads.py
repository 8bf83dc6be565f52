"""The console's records pages on real chDB: newest first, each record once though stored twice
(a redelivery), and the cursor pages through every match with no record twice or left out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from aiaudit.pipeline import store
from aiaudit.pipeline.console import reads
from aiaudit.pipeline.store.filters import Filters

pytestmark = pytest.mark.integration


def test_pages_hold_each_record_once_and_the_cursor_reaches_every_one(settings, client):
    db = store.database(settings)
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    rows = [[t0 + timedelta(seconds=i // 3), "ana" if i % 2 else "ben", f"o/p{i % 3}", i, f"{i:064x}"]
            for i in range(240)]
    dupes = [r for r in rows if r[3] % 5 == 0 and r[1] == "ana"]  # a redelivery stored these twice
    store.insert(client, f"{db}.evidence", rows + dupes, ("ts", "actor_id", "origin", "seq", "leaf_hash"))
    seen: list[tuple[str, int]] = []
    before = None
    pages = 0
    while True:
        shown = reads.records(client, settings, Filters(actor="ana"), before)
        page = shown.values["records"]
        assert [r["ts"] for r in page] == sorted((r["ts"] for r in page), reverse=True)
        seen += [(r["origin"], r["seq"]) for r in page]
        pages += 1
        if shown.values["next"] is None:
            break
        before = reads.parse_cursor(shown.values["next"])
    assert pages == 3 and len(seen) == len(set(seen)) == 120  # 50 + 50 + 20, each once
    assert set(seen) == {(r[2], r[3]) for r in rows if r[1] == "ana"}
