"""`aiaudit access list`: who read which evidence through aiaudit, when, and what they got."""

from __future__ import annotations

import argparse
import sys

from aiaudit.pipeline.cli.args import add_format, add_limit, time
from aiaudit.pipeline.cli.output import note, print_rows
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store.filters import MAX_LIMIT


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("access", help="who read which evidence, when: the signed access records",
                       description="Every read of the store through aiaudit (query, sql, export, proof, verify, "
                                   "alerts, incidents, the sink's store API) writes an access record signed by the "
                                   "process that served it, chained like all evidence. Offline `verify --export` "
                                   "reads a file and writes none. This listing is itself a read, and recorded.")
    actions = p.add_subparsers(dest="action", required=True, metavar="{list}")
    ls = actions.add_parser("list", help="access records, newest first")
    ls.add_argument("--principal", help="only reads by this principal (an analyst, or local:<user> through a "
                                        "console key)")
    ls.add_argument("--op", help="only this operation (query, sql, export, proof, verify, alerts, incidents, ...)")
    ls.add_argument("--since", type=time, help="RFC 3339, or a duration ago (7d, 2h)")
    ls.add_argument("--until", type=time, help="RFC 3339, or a duration ago")
    add_limit(ls)
    add_format(ls)
    ls.set_defaults(func=list_access)


def list_access(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.store.access import select_access

    client = store.open_reads(settings, "access")
    try:
        names, rows = store.query_rows(client, *select_access(
            store.database(settings), principal=args.principal, op=args.op, since=args.since, until=args.until,
            limit=min(args.limit + 1, MAX_LIMIT)))
    finally:
        client.close()
    shown = [dict(zip(names, row)) for row in rows[:args.limit]]
    print_rows(shown, args.format)
    print(f"{len(shown)} access record(s)", file=sys.stderr)
    if len(rows) > args.limit:
        note(f"more than the {args.limit} shown (newest first): raise --limit or narrow --since")
    return 0
