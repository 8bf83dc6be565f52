"""`aiaudit demo`: the end-to-end demo on the embedded defaults (local Kafka, chDB)."""

from __future__ import annotations

import argparse

from aiaudit.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="end-to-end demo on the embedded defaults (local Kafka, chDB)",
                       description="Start Kafka and the workers, emit events (some malformed), wait until they are "
                                   "queryable, verify every chain, run sample queries, stop everything.")
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--keep-running", action="store_true", help="leave the broker running afterwards")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.ops.demo import run_demo

    return run_demo(settings, events=args.events, keep_running=args.keep_running)
