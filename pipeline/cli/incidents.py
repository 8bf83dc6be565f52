"""`aiaudit incidents list|show|ack|resolve|reopen|history`: what the SOC works."""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import datetime, timedelta, timezone

from aiaudit.pipeline.cli.alerts import add_status_actions
from aiaudit.pipeline.cli.args import add_format, add_limit, time
from aiaudit.pipeline.cli.output import note, print_rows, shown
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store.filters import MAX_LIMIT
from aiaudit.pipeline.store.incidents import FAMILIES


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("incidents", help="incidents (findings grouped per identity and family): list, show, "
                                         "acknowledge, resolve, history",
                       description="An incident groups one identity's findings of one family (injection, volume, "
                                   "data exposure, ...) until 4 h pass without one; it pages once, when a rule makes "
                                   "it high, within the daily paging budget. Raw findings stay in `aiaudit alerts`.")
    actions = p.add_subparsers(dest="action", required=True, metavar="{list,show,ack,resolve,reopen,history}")
    ls = actions.add_parser("list", help="incidents, most recently active first")
    ls.add_argument("--identity")
    ls.add_argument("--family", choices=FAMILIES)
    ls.add_argument("--severity", choices=["medium", "high", "critical"])
    ls.add_argument("--status", choices=["open", "acknowledged", "resolved"])
    ls.add_argument("--paged", action="store_true", help="only incidents that asked for their page")
    ls.add_argument("--since", type=time, help="active since: RFC 3339, or a duration ago (7d, 2h)")
    ls.add_argument("--until", type=time, help="opened before: RFC 3339, or a duration ago")
    add_limit(ls)
    add_format(ls)
    ls.set_defaults(func=list_incidents)
    sh = actions.add_parser("show", help="one incident: what fired, its records, its span")
    sh.add_argument("uid", help="the incident uid")
    add_format(sh)
    sh.set_defaults(func=show)
    add_status_actions(actions, "incident", "the incident uid", set_status, history,
                       "an incident's updates, page and status changes")


def list_incidents(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query.incidents import list_incidents

    client = store.open_reads(settings, "incidents")
    rows = list_incidents(client, settings, identity=args.identity, family=args.family, severity=args.severity,
                          status=args.status, paged=True if args.paged else None, since=args.since, until=args.until,
                          limit=min(args.limit + 1, MAX_LIMIT))
    cut = len(rows) > args.limit
    rows = rows[:args.limit]
    print_rows([{"last_seen": r["last_seen"], "severity": r["severity"], "family": r["family"],
                 "identity": r["identity"], "findings": r["findings"], "page": r["page_state"],
                 "status": r["status"] + (" (quiet)" if r["quiet"] else ""), "by": r["status_by"],
                 "opened_at": r["opened_at"], "uid": r["uid"]} for r in rows], args.format)
    print(f"{len(rows)} incident(s)", file=sys.stderr)
    if cut:
        note(f"more incidents match than the {len(rows)} shown (most recently active first): raise --limit or "
             "narrow the filters")
    return 0


def show(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query.incidents import show_incident

    inc = show_incident(store.open_reads(settings, "incidents"), settings, args.uid)
    if args.format in ("json", "jsonl"):
        print_rows([inc], args.format)
        return 0
    info, unmapped = inc["incident"]["finding_info_list"][0], inc["incident"]["unmapped"]
    fields = [("uid", inc["uid"]), ("title", info["title"]), ("status", inc["status"] + (" (quiet)" if inc["quiet"] else "")),
              ("severity", inc["severity"]), ("family", inc["family"]), ("identity", inc["identity"]),
              ("findings", inc["findings"]), ("detectors", ", ".join(f"{k} ×{v}" for k, v in
                                                                   unmapped["incident"]["detectors"].items())),
              ("evidence from", inc["window_start"]), ("opened at", inc["opened_at"]), ("last seen", inc["last_seen"]),
              ("page", inc["page_state"] or "none (no rule made it high)"),
              ("previous incident", inc["previous"] or "-"),
              ("latest record", f"{unmapped['chain']['origin']}#{unmapped['chain']['seq']}"),
              ("first records", " ".join(unmapped["incident"]["records"]))]
    print_rows([{"field": k, "value": v} for k, v in fields], args.format)
    until = inc["last_seen"] + timedelta(milliseconds=1)
    note(f"its records: aiaudit query --actor {shlex.quote(shown(inc['identity']))} "
         f"--since {_rfc3339(inc['window_start'])} "
         f"--until {_rfc3339(until)}; its history: aiaudit incidents history {inc['uid']}")
    return 0


def _rfc3339(t: datetime) -> str:
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)  # the store's times are UTC
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def set_status(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.cli.alerts import send_status
    from aiaudit.pipeline.query.incidents import set_incident_status

    return send_status(args, settings, "incident", set_incident_status)


def history(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query.incidents import incident_history

    print_rows(incident_history(store.open_reads(settings, "incidents"), settings, args.uid), args.format)
    return 0
