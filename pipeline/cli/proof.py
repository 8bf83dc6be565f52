"""`aiaudit proof inclusion|consistency`: RFC 9162 proofs for a chain, from stored hashes."""

from __future__ import annotations

import argparse
import json

from aiaudit.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("proof", help="RFC 9162 inclusion or consistency proof for a chain, from stored hashes",
                       description="Prints JSON with base64 hashes and the signed checkpoint; the proof is checked "
                                   "before it is printed.")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="{inclusion,consistency}")
    i = kinds.add_parser("inclusion", help="a record is in the chain at a size",
                         description="A record (--origin, --seq) is in the chain at --size (default: the newest "
                                     "signed checkpoint).")
    i.add_argument("--origin", required=True, help="the chain, e.g. acme/dev/ai.requests/p0/g1")
    i.add_argument("--seq", type=int, required=True, help="the record's seq")
    i.add_argument("--size", type=int, help="the tree size (default: the newest signed checkpoint)")
    i.set_defaults(func=inclusion)
    c = kinds.add_parser("consistency", help="the chain at one size is a prefix of the chain at a later one",
                         description="The chain at --from is a prefix of the chain at --to.")
    c.add_argument("--origin", required=True, help="the chain, e.g. acme/dev/ai.requests/p0/g1")
    c.add_argument("--from", dest="old_size", type=int, required=True, help="the older size")
    c.add_argument("--to", dest="new_size", type=int, help="the newer size (default: the newest signed checkpoint)")
    c.set_defaults(func=consistency)


def inclusion(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query import proofs

    out = proofs.inclusion(store.open_reads(settings, "proof"), settings, args.origin, args.seq, args.size)
    print(json.dumps(out, indent=2))
    return 0


def consistency(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query import proofs

    out = proofs.consistency(store.open_reads(settings, "proof"), settings, args.origin, args.old_size,
                             args.new_size)
    print(json.dumps(out, indent=2))
    return 0
