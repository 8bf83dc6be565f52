"""Argument types and the options several commands share (filters, output format, logging)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from datetime import datetime, timezone

from aiaudit.pipeline.contract.schema import DECISIONS, LEVELS
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.store.filters import MAX_LIMIT, Filters

FORMATS = ["table", "json", "jsonl", "csv"]


def limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {MAX_LIMIT:,}")
    return value


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 256")
    return value


def duration(text: str) -> int:
    """Seconds of a duration like 15m (argparse type)."""
    from aiaudit.pipeline.timespec import parse_duration

    try:
        return int(parse_duration(text).total_seconds())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def time(text: str) -> datetime:
    """An RFC 3339 time, or a duration ago such as 7d (argparse type)."""
    from aiaudit.pipeline.timespec import parse_time

    try:
        return parse_time(text, datetime.now(timezone.utc))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters")
    g.add_argument("--actor", help="identity: the person or agent, or the person an agent acted for")
    g.add_argument("--since", type=time, help="from this time (inclusive): RFC 3339 (2026-11-01T00:00:00Z) or a "
                   "duration ago (7d, 2h, 30m)")
    g.add_argument("--until", type=time, help="to this time (exclusive), in the same forms")
    g.add_argument("--vendor", dest="provider", help="AI vendor (gen_ai.provider.name), e.g. openai")
    g.add_argument("--model", help="requested model")
    g.add_argument("--policy-version", help="policy version that decided")
    g.add_argument("--decision", choices=DECISIONS)
    g.add_argument("--classification", choices=LEVELS, help="prompt data classification")
    g.add_argument("--route")
    g.add_argument("--origin", help="one chain, e.g. acme/dev/ai.requests/p0/g1")
    g.add_argument("--event-id", help="one request by its event id (a gateway answer's X-Request-Id)")


def filters(args: argparse.Namespace, limit: int = 100) -> Filters:
    try:
        return Filters(actor=args.actor, since=args.since, until=args.until, provider=args.provider, model=args.model,
                       policy_version=args.policy_version, decision=args.decision, classification=args.classification,
                       route=args.route, origin=args.origin, event_id=args.event_id, limit=limit)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def add_limit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=limit, default=100, help="at most this many rows (default 100; a note says when "
                   "more match)")


def add_format(p: argparse.ArgumentParser, *, ocsf: bool = False) -> None:
    p.add_argument("--format", choices=FORMATS + (["ocsf"] if ocsf else []), default="table",
                   help="json: one JSON array; jsonl: one JSON object per line" + (
                       "; ocsf: one OCSF 1.8.0 API Activity event per line (docs/soc.md)" if ocsf else ""))


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


@contextlib.contextmanager
def model_errors() -> Iterator[None]:
    """detectors/ raises its own ArtifactRefused (it imports nothing of the pipeline): a ConfigError here."""
    from aiaudit.detectors.model import ArtifactRefused

    try:
        yield
    except ArtifactRefused as exc:
        raise ConfigError(str(exc)) from exc


def start_logging(verbose: bool) -> None:
    from aiaudit.pipeline.logs import configure

    configure(logging.DEBUG if verbose else logging.INFO, sys.stderr)
