"""`aiaudit emit --file F | --synthetic N`: events through the SDK, as an application sends them."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from aiaudit.pipeline.errors import AiAuditError, ConfigError
from aiaudit.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("emit", help="send events from a JSONL file or synthetic ones",
                       description="Emit AI-request events through the SDK (validated, numbered, signed, "
                                   "Avro-encoded).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", help="JSONL file, one event per line (occurred_at as RFC 3339)")
    src.add_argument("--synthetic", type=int, metavar="N", help="generate N realistic events")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--emitter-id", help="names one numbering (emitter_seq from 0): a new run needs a new id, "
                   "or verify reports emitter_seq_reused; it must start with the name of the emitter key "
                   "(AIAUDIT_EMITTER__KEY_FILE) followed by '-' or '/' (default: a fresh <name>-<uuid>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.contract import from_json_event
    from aiaudit.pipeline.emit.producer import Emitter
    from aiaudit.pipeline.emit.synthetic import SyntheticEvents

    if args.file:
        try:
            fh = open(args.file, encoding="utf-8")  # noqa: SIM115  # closed below; opened before any broker work
        except OSError as exc:
            raise ConfigError(f"{args.file}: cannot read the events file: {exc.strerror}") from None
    emitter = Emitter(settings, emitter_id=args.emitter_id)
    emitter.check_broker()
    sent = 0
    if args.file:
        with fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    emitter.emit(from_json_event(json.loads(line)))
                except (ValueError, AiAuditError) as exc:
                    raise ConfigError(f"{args.file}:{lineno}: {exc} (nothing after this line was sent)") from exc
                sent += 1
    else:
        gen = SyntheticEvents(args.seed, datetime.now(timezone.utc), emitter.emitter_id)
        for i in range(args.synthetic):
            emitter.emit(gen.next_event())
            sent += 1
            if (i + 1) % 10_000 == 0:
                print(f"  emitted {i + 1}/{args.synthetic}", file=sys.stderr)
    emitter.flush()
    print(f"emitted {sent} events as {emitter.emitter_id}; {emitter.delivered} acknowledged by the broker")
    return 0
