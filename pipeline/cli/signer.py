"""`aiaudit signer init|serve`: the checkpoint signer, a process of its own holding the checkpoint key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiaudit.pipeline.cli.args import add_verbose, start_logging
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings

KEY_NAME, STATE_NAME = "checkpoint.key", "signed.json"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("signer", help="the checkpoint signer: holds the checkpoint key apart from the chain worker",
                       description="The only holder of the checkpoint key. It signs a chain's checkpoint only when "
                                   "the tree extends the one it signed last, so the chain worker's host alone can "
                                   "neither issue a checkpoint nor rewrite signed history. Both sides read the "
                                   "token from AIAUDIT_SIGNER_TOKEN; the worker finds the signer by "
                                   "AIAUDIT_CHAIN__SIGNER_URL.")
    actions = p.add_subparsers(dest="action", required=True, metavar="{init,serve}")
    i = actions.add_parser("init", help="make the signer's folder and checkpoint key (checkpoint.pub is what "
                                        "verifiers and the chain worker pin)")
    i.add_argument("folder", type=Path, help="the signer's own folder (0700), e.g. /var/lib/aiaudit-signer")
    i.set_defaults(func=init)
    s = actions.add_parser("serve", help="sign checkpoints over HTTP (POST /sign, GET /state)")
    s.add_argument("folder", type=Path, help="the signer's folder (from `aiaudit signer init`)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8742)
    s.add_argument("--adopt", action="store_true",
                   help="take over chains this signer never signed at their current size (once, when moving the "
                        "checkpoint key out of the chain worker); logged per chain")
    add_verbose(s)
    s.set_defaults(func=serve)


def init(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.keys import CHECKPOINT_PUB, ensure_checkpoint_key

    key = args.folder / KEY_NAME
    if not ensure_checkpoint_key(key):
        raise ConfigError(f"{key} exists; a signer keeps its key")
    print(f"checkpoint key {key} (0600); its public key {key.with_name(CHECKPOINT_PUB)}: give that file to the chain "
          "worker (AIAUDIT_SIGNING__CHECKPOINT_KEY_FILE) and to `aiaudit trust init`")
    return 0


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from aiaudit.pipeline.signer.server import SignerConfig, build_app, token_from_env

    start_logging(args.verbose)
    config = SignerConfig(args.folder / KEY_NAME, args.folder / STATE_NAME, token_from_env(), adopt=args.adopt)
    app = build_app(config)
    print(f"checkpoint signer on http://{args.host}:{args.port}/sign (key {config.key_file})", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
