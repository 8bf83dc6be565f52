"""`aiaudit otlp serve|sender`: the OTLP/HTTP receiver for OpenTelemetry GenAI telemetry, and the
senders it accepts (docs/otlp.md)."""

from __future__ import annotations

import argparse
import sys

from aiaudit.pipeline.cli.args import add_verbose, start_logging
from aiaudit.pipeline.cli.output import print_rows
from aiaudit.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("otlp", help="the OTLP/HTTP receiver: OpenTelemetry GenAI spans as signed evidence",
                       description="Receive OpenTelemetry traces and logs over OTLP/HTTP (protobuf or JSON) and record "
                                   "every GenAI operation as a contract event signed with the receiver's emitter key.")
    actions = p.add_subparsers(dest="action", required=True, metavar="{serve,sender}")
    s = actions.add_parser("serve", help="serve OTLP/HTTP on /v1/traces and /v1/logs (127.0.0.1:4318 unless told)")
    s.add_argument("--host", help="address to bind (default AIAUDIT_OTLP__HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default AIAUDIT_OTLP__PORT or 4318)")
    add_verbose(s)
    s.set_defaults(func=serve)
    snd = actions.add_parser("sender", help="the senders the receiver accepts: add, list, remove")
    snd_actions = snd.add_subparsers(dest="sender_action", required=True, metavar="{add,list,remove}")
    add = snd_actions.add_parser("add", help="add a sender and print its token (shown once; only its hash is kept)")
    add.add_argument("name", help="the sender's name (its events' emitter id carries it)")
    add.add_argument("--replace", action="store_true", help="give an existing sender a new token")
    add.set_defaults(func=add_sender)
    ls = snd_actions.add_parser("list", help="the senders")
    ls.set_defaults(func=list_senders)
    rm = snd_actions.add_parser("remove", help="remove a sender (its token stops working within seconds)")
    rm.add_argument("name")
    rm.set_defaults(func=remove_sender)


def add_sender(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.otlp.senders import Senders, senders_file

    senders = Senders(senders_file(settings))
    token = senders.add(args.name, replace=args.replace)
    print(token)
    print(f"sender {args.name} in {senders.path}: its exporter sends `Authorization: Bearer <the token above>` "
          "(shown once; only its hash is kept)", file=sys.stderr)
    return 0


def list_senders(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.otlp.senders import Senders, senders_file

    print_rows(Senders(senders_file(settings)).listed(), "table")
    return 0


def remove_sender(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.otlp.senders import Senders, senders_file

    Senders(senders_file(settings)).remove(args.name)
    print(f"removed sender {args.name}")
    return 0


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.otlp.receiver import serve as run

    start_logging(args.verbose)
    settings = settings.updated(otlp={k: v for k, v in (("host", args.host), ("port", args.port)) if v})
    o = settings.otlp
    print(f"aiaudit OTLP receiver on http://{o.host}:{o.port} (/v1/traces, /v1/logs)", flush=True)
    run(settings, o.host, o.port)
    return 0
