"""`aiaudit export`: records with their signed checkpoints and inclusion proofs, sealed (JSONL)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from aiaudit.pipeline.cli.args import add_filters, filters
from aiaudit.pipeline.cli.output import warn
from aiaudit.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="write records with their signed checkpoints and inclusion proofs (JSONL)",
                       description="JSON Lines: a sealed header, one record per line (the exact signed bytes, base64), "
                                   "the chains' signed checkpoints with witness cosignatures, and for a filtered "
                                   "export (a sample) an RFC 9162 inclusion proof per record. `aiaudit verify --export "
                                   "FILE` checks it without the database; the format is in docs/formats.md.")
    add_filters(p)
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.keys import load_operator_key, operator_key_file
    from aiaudit.pipeline.query.export import export_records

    client = store.open_reads(settings, "export")  # a mistyped store is named first
    operator = load_operator_key(operator_key_file(settings.signing.keys_dir, settings.signing.operator_key_file))
    chosen = filters(args, limit=1)
    now = datetime.now(timezone.utc)
    progress = (lambda line: print(f"  exported {line}", file=sys.stderr))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            done = export_records(client, settings, chosen, fh, now=now, operator=operator, progress=progress)
    else:
        done = export_records(client, settings, chosen, sys.stdout, now=now, operator=operator, progress=progress)
    print(f"exported {done.records} record(s) ({done.selection}), {done.checkpoints} signed checkpoint(s), "
          f"{done.proofs} inclusion proof(s)", file=sys.stderr)
    if done.unproven:
        warn(f"{done.unproven} record(s) are newer than their chain's newest signed checkpoint: no inclusion proof "
             "yet (export again after the chain worker signs)")
    return 0
