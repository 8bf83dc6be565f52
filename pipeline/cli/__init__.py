"""The `aiaudit` command line: one module per command family, each registering its sub-commands.

Errors become one line and an exit code here, and only here: an AiAuditError its own code, a
missing server library a line naming `aiaudit[server]`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from aiaudit.pipeline.cli import (
    access,
    alerts,
    console,
    demo,
    detect,
    emit,
    erase,
    export,
    gateway,
    incidents,
    infra,
    keys,
    otlp,
    proof,
    query,
    report,
    signer,
    sql,
    trust,
    verify,
    witness,
    worker,
)
from aiaudit.pipeline.errors import AiAuditError, ConfigError
from aiaudit.pipeline.logs import configure as configure_logs
from aiaudit.pipeline.settings import Settings

# The order `aiaudit --help` lists them in: run it, send to it, read from it, prove it, act on it.
FAMILIES = (demo, infra, worker, emit, gateway, otlp, query, sql, export, report, verify, proof, trust, witness, signer, keys,
            detect, incidents, alerts, access, erase, console)

# Top-level modules of the `server` extra (pyproject.toml): a command that needs one on the light install
# says which extra to install instead of a traceback.
SERVER_MODULES = frozenset({"nacl", "clickhouse_connect", "chdb", "sklearn", "faust", "aiokafka", "numpy", "starlette",
                            "uvicorn", "aiohttp", "yaml", "jwt", "mode", "google", "opentelemetry"})


def build_parser() -> argparse.ArgumentParser:
    from aiaudit import __version__

    p = argparse.ArgumentParser(prog="aiaudit", description="Signed, hash-chained evidence of every AI request: "
                                "`aiaudit COMMAND --help` for each command.")
    p.add_argument("--version", action="version", version=f"aiaudit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in FAMILIES:
        family.register(sub)
    return p


def _settings() -> Settings:
    """The settings from the environment; a bad value is one line naming the variable."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            name = "AIAUDIT_" + "__".join(str(p).upper() for p in e["loc"])
            got = f" (got {str(e['input'])[:40]!r})" if isinstance(e.get("input"), (str, int, float)) else ""
            problems.append(f"{name}: {e['msg']}{got}")
        raise ConfigError("; ".join(problems)) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logs(logging.WARNING)  # warnings of any command (librdkafka's too) in the one format; workers log more
    try:
        settings = _settings()
        return int(args.func(args, settings))
    except AiAuditError as exc:
        print(f"aiaudit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in SERVER_MODULES:
            print(f"aiaudit: error: `aiaudit {args.command}` needs the server install (missing module {exc.name}): "
                  "pip install 'aiaudit[server]'", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
