"""`aiaudit alerts list|ack|resolve|reopen|history|redeliver`: what the SOC does with findings."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from aiaudit.pipeline.cli.args import add_format, add_limit, time
from aiaudit.pipeline.cli.output import note, print_rows
from aiaudit.pipeline.errors import ConfigError, StoreError
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store.filters import MAX_LIMIT

STATUS = {"ack": "acknowledged", "resolve": "resolved", "reopen": "open"}


def add_status_actions(actions: Any, what: str, uid_help: str, set_status: Callable[..., int],
                       history: Callable[..., int], history_help: str) -> None:
    """`ack|resolve|reopen UID [--note] [--key FILE] [--by NAME]` and `history UID`: the same for alerts
    and incidents. The change is signed with the analyst's key: that key says who made it."""
    for action, status in STATUS.items():
        a = actions.add_parser(action, help=f"mark an {what} {status} (appended: who, when, note; signed with your "
                                            "analyst key)")
        a.add_argument("uid", help=uid_help)
        a.add_argument("--key", help="your analyst key (default: AIAUDIT_SIGNING__ANALYST_KEY_FILE; `aiaudit keys "
                                     "analyst new NAME` makes one)")
        a.add_argument("--by", help="who changes the status: your key's name (given, it must match); with a "
                                    "console's key, the person signed in")
        a.add_argument("--note")
        a.set_defaults(func=set_status)
    h = actions.add_parser("history", help=history_help)
    h.add_argument("uid", help=uid_help)
    add_format(h)
    h.set_defaults(func=history)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("alerts", help="list anomaly alerts; acknowledge, resolve or reopen one; re-drive dead "
                                      "deliveries",
                       description="Alerts are OCSF Detection Findings from the scoring worker. Status changes are "
                                   "appended (who, when, note), never overwritten: `history` shows them all.")
    actions = p.add_subparsers(dest="action", required=True,
                               metavar="{list,ack,resolve,reopen,history,redeliver}")
    ls = actions.add_parser("list", help="alerts, newest first, or grouped")
    ls.add_argument("--actor")
    ls.add_argument("--severity", choices=["medium", "high", "critical"])
    ls.add_argument("--status", choices=["open", "acknowledged", "resolved"])
    ls.add_argument("--detector", help="only findings this detector fired on (isolation-forest, or a rule: "
                                       "prompt_injection, request_burst, ...)")
    ls.add_argument("--since", type=time, help="RFC 3339, or a duration ago (7d, 2h)")
    ls.add_argument("--until", type=time, help="RFC 3339, or a duration ago")
    ls.add_argument("--group-by", nargs="+", choices=["actor", "model", "detectors", "severity", "status"],
                    help="one row per group (alerts, open ones, highest severity, latest), largest first; "
                         "`--group-by actor model` is per identity and detector")
    add_limit(ls)
    add_format(ls)
    ls.set_defaults(func=list_alerts)
    add_status_actions(actions, "alert", "the finding uid", set_status, history,
                       "an alert's status changes and delivery attempts")
    r = actions.add_parser("redeliver", help="give dead-lettered deliveries one more attempt each",
                           description="The newest dead letter of each delivery goes back to the delivery agent's "
                                       "retries topic for one more attempt.")
    r.add_argument("uid", nargs="?", help="only this finding's dead letters")
    r.add_argument("--destination", help="only dead letters of this destination")
    r.add_argument("--dry-run", action="store_true", help="list what would be re-driven, write nothing")
    r.add_argument("--by", required=True, help="who re-drives: recorded with each delivery")
    add_format(r)
    r.set_defaults(func=redeliver)


def set_status(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.query.alerts import set_status

    return send_status(args, settings, "alert", set_status)


def send_status(args: argparse.Namespace, settings: Settings, what: str, change: Callable[..., object]) -> int:
    """`ack|resolve|reopen UID [--note]` of an alert or an incident, signed with the analyst's key:
    `change(settings, uid, status, signer=, by=, note=, client=)` publishes it, checking first that it
    exists when the store is free."""
    from pathlib import Path

    from aiaudit.pipeline import store
    from aiaudit.pipeline.contract.analyst_keys import load_status_signer

    status = STATUS[args.action]
    key_file = Path(args.key) if args.key else settings.signing.analyst_key_file
    if key_file is None:
        raise ConfigError("a status change is signed with the analyst's own key, which says who made it: make one "
                          "with `aiaudit keys analyst new NAME` and give it as --key FILE or "
                          "AIAUDIT_SIGNING__ANALYST_KEY_FILE")
    signer = load_status_signer(key_file)
    checker = None
    try:
        checker = store.open_reads(settings, "alerts")
    except StoreError as exc:
        if "one process at a time" not in str(exc):
            raise
        note(f"the store is held by the running sink; the change is sent without checking the {what} exists, "
             "and shows once the sink has stored it")
    try:
        change(settings, args.uid, status, signer=signer, by=args.by, note=args.note or "", client=checker)
    finally:
        if checker is not None:
            checker.close()
    print(f"{args.uid}: {status} by {args.by or signer.name} (signed with key {signer.key.kid}; sent, shown once "
          "chained)")
    return 0


def list_alerts(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query.alerts import list_alerts

    client = store.open_reads(settings, "alerts")
    chosen = dict(actor=args.actor, severity=args.severity, since=args.since, until=args.until, status=args.status,
                  detector=args.detector, limit=min(args.limit + 1, MAX_LIMIT))
    if args.group_by:
        groups = list_alerts(client, settings, **chosen, group_by=tuple(args.group_by))
        shown = groups[:args.limit]
        print_rows(shown, args.format)
        print(f"{len(shown)} group(s) of {sum(g['alerts'] for g in shown)} alert(s)", file=sys.stderr)
        if len(groups) > args.limit:
            note(f"more groups than the {args.limit} shown (largest first): raise --limit")
        return 0
    rows = list_alerts(client, settings, **chosen)
    cut = len(rows) > args.limit
    rows = rows[:args.limit]
    listed = [{"detected_at": r["detected_at"], "severity": r["severity"], "actor": r["actor_id"],
               "score": round(r["score"], 3), "status": r["status"], "by": r["status_by"],
               "record": f"{r['origin']}#{r['seq']}", "model": r["model_version"], "detectors": r["detectors"],
               "uid": r["finding_uid"], "why": str(r["explanation"]).split("driven by ", 1)[-1]} for r in rows]
    print_rows(listed, args.format)
    print(f"{len(rows)} alert(s)", file=sys.stderr)
    if cut:
        note(f"more alerts match than the {len(rows)} shown (newest first): raise --limit or narrow the filters")
    return 0


def history(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query.alerts import status_history

    print_rows(status_history(store.open_reads(settings, "alerts"), settings, args.uid), args.format)
    return 0


def redeliver(args: argparse.Namespace, settings: Settings) -> int:
    """Dead-lettered deliveries -> the delivery agent's retries topic, one more attempt each."""
    from aiaudit.pipeline.deliver.redeliver import plan_from_dead_letters, write_redrives

    plan = plan_from_dead_letters(settings, by=args.by, destination=args.destination, finding_uid=args.uid)
    for reason, n in sorted(plan.skipped.items()):
        print(f"aiaudit: {n} dead letter(s) not re-driven: {reason}", file=sys.stderr)
    print_rows([{"delivery": r.delivery_uid, "destination": r.job["destination"], "attempt": r.job["attempt"],
                 "finding": r.job["finding"]["finding_info"]["uid"]} for r in plan.redrives], args.format)
    if args.dry_run or not plan.redrives:
        print(f"{len(plan.redrives)} deliver{'y' if len(plan.redrives) == 1 else 'ies'} to re-drive"
              f"{' (dry run: nothing written)' if args.dry_run else ''}", file=sys.stderr)
        return 0
    write_redrives(settings, plan)
    print(f"{len(plan.redrives)} re-drive(s) written to {settings.kafka.delivery_retries_topic}: the delivery agent "
          "makes one more attempt each (`aiaudit alerts history UID` shows the outcome)", file=sys.stderr)
    return 0
