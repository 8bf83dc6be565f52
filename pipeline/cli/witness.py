"""`aiaudit witness serve|keygen|submit`: a C2SP witness, its key, and sending it checkpoints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiaudit.pipeline.cli.args import add_verbose, start_logging
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("witness", help="run a C2SP witness; make its key; submit checkpoints to a witness",
                       description="A witness is run by someone other than the operator: it cosigns a chain's "
                                   "checkpoint only if it is consistent with the last it cosigned.")
    actions = p.add_subparsers(dest="action", required=True, metavar="{serve,keygen,submit}")
    s = actions.add_parser("serve", help="run a C2SP tlog-witness over HTTP")
    s.add_argument("--config", required=True, help="the witness config (YAML: name, key_file, state_file, logs)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8500)
    _metrics_args(s)
    add_verbose(s)
    s.set_defaults(func=serve)
    k = actions.add_parser("keygen", help="the witness's own key and its verifier key")
    k.add_argument("--name", required=True, help="the witness's name, e.g. witness.example/w1")
    k.add_argument("--key-file", required=True, help="where to write the witness's private key")
    k.set_defaults(func=keygen)
    u = actions.add_parser("submit", help="send each chain's newest signed checkpoint with a consistency proof to "
                                          "a witness and keep the cosignature")
    u.add_argument("--url", required=True, help="the witness's URL prefix")
    u.add_argument("--witness-key", required=True, help="the witness's verifier key (from its keygen)")
    u.add_argument("--every", type=float, metavar="S", help="keep submitting every S seconds")
    _metrics_args(u)
    u.set_defaults(func=submit)


def keygen(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.chain.note import SIG_COSIGNATURE_V1, NoteSigner
    from aiaudit.pipeline.keys import ensure_checkpoint_key, load_checkpoint_key

    path = Path(args.key_file)
    if not ensure_checkpoint_key(path):
        raise ConfigError(f"{path} exists; a witness keeps its key (choose another --key-file)")
    vkey = NoteSigner.local(args.name, SIG_COSIGNATURE_V1, load_checkpoint_key(path)).verifier.vkey()
    print(f"witness key {path} (0600); its verifier key, to pin in the log's and the auditors' settings:\n{vkey}")
    return 0


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from aiaudit.pipeline.witness.server import build_app, load_config

    start_logging(args.verbose)
    app = build_app(load_config(Path(args.config)))
    _serve_metrics(args)
    print(f"witness {app.state.witness.name} on http://{args.host}:{args.port}/add-checkpoint", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _metrics_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics on this port (/metrics; off when not given)")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="ADDR",
                   help="the address the metrics listen on (default 127.0.0.1: this machine only)")


def _serve_metrics(args: argparse.Namespace) -> None:
    if args.metrics_port:
        from aiaudit.pipeline import metrics

        metrics.serve(args.metrics_port, args.metrics_host)


def submit(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.chain.note import NoteError, Verifier
    from aiaudit.pipeline.ops.supervisor import stop_on_signals
    from aiaudit.pipeline.witness.submit import submit_once

    try:
        witness = Verifier.from_vkey(args.witness_key)
    except NoteError as exc:
        raise ConfigError(f"--witness-key: {exc}") from exc
    client = store.open_reads(settings, "witness")
    _serve_metrics(args)
    stop = stop_on_signals()
    while True:
        for o in submit_once(client, settings, args.url, witness):
            print(f"{o.origin} size {o.size}: {o.status}")
        if not args.every or stop.wait(args.every):
            return 0
