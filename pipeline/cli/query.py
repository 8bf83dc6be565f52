"""`aiaudit query`: retrieve records by identity, time range, vendor, policy version and more."""

from __future__ import annotations

import argparse
import json
import sys

from aiaudit.pipeline.cli.args import add_filters, add_format, add_limit, filters
from aiaudit.pipeline.cli.output import more_notice, print_rows
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store.filters import MAX_LIMIT


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("query", help="retrieve records by identity, time, vendor, policy version ...",
                       description="Retrieve evidence records from ClickHouse (each record once, oldest first).")
    add_filters(p)
    add_limit(p)
    add_format(p, ocsf=True)
    p.add_argument("--all-columns", action="store_true", help="every typed column, not just the usual ones")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query.api import find_records
    from aiaudit.pipeline.store import evidence

    if args.format == "ocsf":  # what an OCSF event carries: the signed record and its integrity fields
        columns: tuple[str, ...] = ("origin", "seq", "leaf_hash", "kid", "sig", "payload")
    else:
        columns = evidence.QUERY_COLUMNS if args.all_columns else evidence.DEFAULT_COLUMNS
    # One row more than asked: whether the result was cut is then known without counting.
    rows = find_records(store.open_reads(settings, "query"), settings,
                        filters(args, min(args.limit + 1, MAX_LIMIT)), columns)
    cut = len(rows) > args.limit
    rows = rows[:args.limit]
    if args.format == "ocsf":
        from aiaudit import __version__
        from aiaudit.pipeline.query.ocsf import api_activity

        for row in rows:
            print(json.dumps(api_activity(row, product_version=__version__), separators=(",", ":")))
    else:
        print_rows(rows, args.format)
    print(f"{len(rows)} record(s)", file=sys.stderr)
    if cut:
        more_notice(len(rows), "record")
    return 0
