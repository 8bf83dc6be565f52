"""`aiaudit report`: the auditor's evidence pack for a period: HTML, JSON, the export behind it, a
sealed manifest (pipeline/report/pack.py). `aiaudit verify --report DIR` checks it offline."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from aiaudit.pipeline.cli.args import time
from aiaudit.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="write the evidence report an auditor attaches: HTML, JSON, export, sealed manifest",
                       description="For a period (and optionally one actor, route, vendor or policy version): a "
                                   "self-contained HTML page mapped to the controls it serves, its figures as JSON, the "
                                   "export behind every figure, and a manifest sealed by the operator key. `aiaudit "
                                   "verify --report DIR` checks the seal and recomputes every figure from the export, "
                                   "offline.")
    p.add_argument("--since", type=time, required=True, metavar="TIME", help="the period's start (RFC 3339, or 30d ago)")
    p.add_argument("--until", type=time, required=True, metavar="TIME",
                   help="the period's end, excluded: a period that has ended (its chains' end is shown by a "
                        "checkpoint signed after it)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write (created; its report files replaced)")
    p.add_argument("--actor", help="only this identity's requests (or the person an agent acted for)")
    p.add_argument("--route", help="only this route's requests")
    p.add_argument("--vendor", dest="provider", help="only this vendor's requests")
    p.add_argument("--policy-version", help="only requests under this policy version")
    p.add_argument("--pdf", action="store_true", help="also print report.pdf with the system's Chromium")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.keys import load_operator_key, operator_key_file
    from aiaudit.pipeline.report.pack import SCOPES, add_pdf, write_report

    client = store.open_reads(settings, "report")
    operator = load_operator_key(operator_key_file(settings.signing.keys_dir, settings.signing.operator_key_file))
    now = datetime.now(timezone.utc)
    scope = {k: getattr(args, k) for k in SCOPES if getattr(args, k) is not None}
    out = Path(args.out)
    if args.until > now:
        print(f"warning: the period ends {args.until:%Y-%m-%d %H:%M:%S} UTC, after now: its end cannot be shown yet "
              "(each chain shows as stale or unfinished); write the report once the period has ended", file=sys.stderr)
    report = write_report(client, settings, out, since=args.since, until=args.until, scope=scope,
                          operator=operator, now=now, progress=lambda line: print(f"  {line}", file=sys.stderr))
    f = report["figures"]
    comp = f["completeness"]
    edges = ("completeness shown" if not comp["problems"] else f"{len(comp['problems'])} completeness problem(s)") \
        if comp["checked"] else "scoped: completeness rests on the store"
    print(f"wrote {out / 'report.html'} ({f['requests']['total']:,} requests, {f['monitoring']['findings']:,} findings, "
          f"{f['integrity']['records_in_period']:,} records in the period; {edges}), with report.json, export.jsonl "
          f"and manifest.json (sealed). Check it: aiaudit verify --report {out}")
    if args.pdf:
        print(f"wrote {add_pdf(out)}")
    return 0
