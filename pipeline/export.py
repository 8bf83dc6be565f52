"""`aiaudit export`: JSONL, one record per line, exactly the signed bytes (base64)."""

from __future__ import annotations

import base64
import json
from typing import IO

from clickhouse_connect.driver.client import Client

from pipeline import store
from pipeline.query.filters import Filters, where_clause
from pipeline.settings import Settings


def export_records(client: Client, settings: Settings, filters: Filters, out: IO[str]) -> int:
    """Write matching records as {"origin","seq","payload","sig","leaf_hash"} lines; returns the count.

    Exact duplicate rows are written once; two different records at one seq (a fork) are both
    written, so the verifier of the export sees the fork too.
    """
    db = store.database(settings)
    where, params = where_clause(filters)
    sql = (f"SELECT origin, seq, payload, sig, leaf_hash FROM {db}.evidence{where} "
           "ORDER BY origin, seq, leaf_hash LIMIT 1 BY origin, seq, leaf_hash")
    n = 0
    for origin, seq, payload, sig, leaf in store.stream_rows(client, sql, params):
        line = {"origin": origin, "seq": int(seq), "payload": base64.b64encode(payload.encode("utf-8")).decode("ascii"),
                "sig": sig, "leaf_hash": leaf}
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
        n += 1
    return n
