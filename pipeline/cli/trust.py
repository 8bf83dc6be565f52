"""`aiaudit trust init --out FILE`: the trust file an auditor pins (`verify --trust FILE`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiaudit.pipeline.cli.output import warn
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("trust", help="write a trust file pinning the public keys and witnesses in force",
                       description="The trust file an auditor verifies with (`aiaudit verify --trust FILE`).")
    actions = p.add_subparsers(dest="action", required=True, metavar="{init}")
    i = actions.add_parser("init", help="write a trust file from the public keys and witnesses in force now",
                           description="Record keys, the checkpoint key, the operator key, the emitter key set "
                                       "(emitter signatures then required) and any witness (one cosignature then "
                                       "required). Check it against what the operator showed you out of band.")
    i.add_argument("--out", required=True, help="the trust file to write")
    i.add_argument("--witness-key", action="append", metavar="VKEY", help="a witness's verifier key (repeatable)")
    i.add_argument("--witness-url", metavar="URL", help="where the witness answers (verify asks it live)")
    i.add_argument("--max-age", metavar="DURATION", help="the tail rule's maximum age to pin, e.g. 15m")
    i.add_argument("--dir", help="keys folder (default: AIAUDIT_SIGNING__KEYS_DIR or ~/.config/aiaudit/keys)")
    i.add_argument("--force", action="store_true", help="replace an existing file")
    i.set_defaults(func=init)


def init(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.contract.emitter_keys import key_set_file, read_key_set
    from aiaudit.pipeline.keys import (
        OPERATOR_PUB,
        checkpoint_key_file,
        operator_key_file,
        read_checkpoint_public_key,
        read_jwks,
        read_operator_public_key,
    )
    from aiaudit.pipeline.verify.trust import parse_trust, trust_document

    sg = settings.signing
    keys_dir = Path(args.dir) if args.dir else sg.keys_dir
    operator: list[bytes] = []
    op_pub = operator_key_file(keys_dir, sg.operator_key_file).with_name(OPERATOR_PUB)
    if op_pub.exists():
        operator.append(read_operator_public_key(op_pub))
    emitters = key_set_file(settings) if not args.dir else keys_dir / "emitters" / "jwks.json"
    witnesses = [(vkey, args.witness_url) for vkey in args.witness_key or []]
    checkpoint = checkpoint_key_file(keys_dir, None if args.dir else sg.checkpoint_key_file)
    from aiaudit.pipeline.contract import analyst_keys as ak

    analysts = ak.key_set_file(settings) if not args.dir else keys_dir / ak.ANALYSTS_DIR / ak.KEY_SET_FILE
    doc = trust_document(read_jwks(keys_dir), [read_checkpoint_public_key(checkpoint)],
                         operator_keys=operator, emitter_jwks=read_key_set(emitters, missing_ok=True),
                         analyst_jwks=ak.read_analyst_key_set(analysts, missing_ok=True),
                         witnesses=witnesses, max_checkpoint_age=args.max_age)
    text = json.dumps(doc, indent=2) + "\n"
    parse_trust(text, "the new trust file")  # never write one that would not load
    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigError(f"{out} exists: a trust file is pinned on purpose; give --force to replace it")
    out.write_text(text)
    print(f"wrote {out}: {len(doc['record_keys']['keys'])} record key(s), {len(doc['checkpoint_keys'])} checkpoint "
          f"key(s), {len(operator)} operator key(s), {len(doc.get('emitter_keys', {}).get('keys', []))} emitter "
          f"key(s), {len(witnesses)} witness(es){' (1 cosignature required)' if witnesses else ''}. Check the keys "
          "against what the operator published out of band; then `aiaudit verify --trust " + str(out) + "`")
    if not operator:
        warn(f"no operator key at {op_pub}: exports cannot be checked with this file (`aiaudit keys operator new`, "
             "then init again)")
    return 0
