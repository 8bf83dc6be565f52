"""`aiaudit erase`, `aiaudit hold`, `aiaudit content`: erasure that keeps every chain valid
(pipeline/query/erase.py), legal holds, and reading kept content while it can be read."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiaudit.pipeline.cli.args import add_format
from aiaudit.pipeline.cli.output import print_rows
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings

if TYPE_CHECKING:
    from aiaudit.pipeline.contract.analysts import StatusSigner
    from aiaudit.pipeline.contract.subject_keys import SubjectKeys

KEY_HELP = "your analyst key (default: AIAUDIT_SIGNING__ANALYST_KEY_FILE): it signs the erasure record"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    e = sub.add_parser("erase", help="erase a person's kept content (or one record's) by destroying its keys; "
                                     "records and chains stay valid",
                       description="Content a route keeps is sealed under keys of the people it is about and of "
                                   "its record, kept outside Kafka. Erasing destroys a key, so every copy (the "
                                   "content topic, the store, exports made from now on) stops opening; a signed "
                                   "erasure record is chained first. A subject under legal hold is refused, and "
                                   "the refusal recorded. Exports already handed over cannot be recalled.")
    what = e.add_mutually_exclusive_group(required=True)
    what.add_argument("--subject", help="the person (an actor, or the person an agent acted for)")
    what.add_argument("--event-id", help="one record's content (a person named inside a prompt)")
    what.add_argument("--expired", action="store_true", help="every record's content past its retention scope")
    e.add_argument("--by", required=True, help="who erases: your key's name (with a console key, the person)")
    e.add_argument("--reason", help="why (recorded): the request's reference, the legal basis")
    e.add_argument("--key", help=KEY_HELP)
    e.set_defaults(func=erase)
    h = sub.add_parser("hold", help="legal hold: a subject whose content may not be erased until released")
    verbs = h.add_subparsers(dest="verb", required=True, metavar="{set,release,list}")
    for verb, text in (("set", "put a subject under legal hold"), ("release", "lift a legal hold")):
        v = verbs.add_parser(verb, help=text)
        v.add_argument("--subject", required=True)
        v.add_argument("--by", required=True)
        v.add_argument("--reason", required=True)
        v.add_argument("--key", help=KEY_HELP)
        v.set_defaults(func=hold)
    ls = verbs.add_parser("list", help="subjects under legal hold")
    add_format(ls)
    ls.set_defaults(func=list_holds)
    c = sub.add_parser("content", help="a record's kept content, while its keys exist")
    cverbs = c.add_subparsers(dest="verb", required=True, metavar="{show}")
    show = cverbs.add_parser("show", help="the prompt and response kept for one record, or when and by whom they "
                                          "were erased")
    show.add_argument("event_id", metavar="EVENT_ID")
    add_format(show)
    show.set_defaults(func=show_content)


def _keys(settings: Settings) -> SubjectKeys:
    from aiaudit.pipeline.contract.subject_keys import SubjectKeys

    return SubjectKeys(settings.content_keys_dir())


def _signer(args: argparse.Namespace, settings: Settings) -> StatusSigner:
    from aiaudit.pipeline.contract.analyst_keys import load_status_signer

    key_file = Path(args.key) if args.key else settings.signing.analyst_key_file
    if key_file is None:
        raise ConfigError("an erasure is signed with the key of whoever erases, which says who did: give --key FILE "
                          "or AIAUDIT_SIGNING__ANALYST_KEY_FILE (`aiaudit keys analyst new NAME` makes one)")
    return load_status_signer(key_file)


def erase(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.query.erase import erase, expire

    signer, keys = _signer(args, settings), _keys(settings)
    if args.expired:
        done = expire(settings, keys, signer, by=args.by)
        print(f"{len(done)} record(s)' content expired (one erasure record each)")
        return 0
    if not args.reason or not args.reason.strip():
        raise ConfigError("--reason is required: it is recorded with the erasure")
    record = erase(settings, keys, signer, reason=args.reason, subject=args.subject, event_id=args.event_id,
                   by=args.by)
    target = f"subject {args.subject}" if args.subject else f"event {args.event_id}"
    keys_text = ", ".join(record["key_ids"]) or "none (nothing was kept under it)"
    print(f"erased the content of {target}: key(s) destroyed {keys_text}; erasure record {record['id']} by "
          f"{record['by']} (chained; records and chains still verify)")
    return 0


def hold(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.query.erase import set_hold

    record = set_hold(settings, _keys(settings), _signer(args, settings), subject=args.subject, reason=args.reason,
                      on=args.verb == "set", by=args.by)
    print(f"{args.subject}: legal hold {'set' if args.verb == 'set' else 'released'} by {record['by']} "
          f"(record {record['id']})")
    return 0


def list_holds(args: argparse.Namespace, settings: Settings) -> int:
    rows = [{"subject": s, **h} for s, h in sorted(_keys(settings).holds().items())]
    print_rows(rows, args.format)
    print(f"{len(rows)} subject(s) under legal hold", file=sys.stderr)
    return 0


def show_content(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.query.content import content_of

    print_rows([content_of(settings, _keys(settings), args.event_id)], args.format)
    return 0
