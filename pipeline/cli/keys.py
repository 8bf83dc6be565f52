"""`aiaudit keys generate|jwks|emitter …|operator …`: the signing keys and the emitter key set."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

from aiaudit.pipeline.cli.args import add_format
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings

DIR_HELP = "keys folder (default: AIAUDIT_SIGNING__KEYS_DIR or ~/.config/aiaudit/keys)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="generate a signing key, print the JWKS, manage emitter and operator keys",
                       description="Ed25519 signing keys live outside the repo (default ~/.config/aiaudit/keys).")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="{generate,jwks,emitter,analyst,operator,history}")
    g = kinds.add_parser("generate", help="a new record signing key (and the checkpoint key, if there is none)")
    g.add_argument("--dir", help=DIR_HELP)
    g.set_defaults(func=generate)
    j = kinds.add_parser("jwks", help="print the record keys' public JWKS")
    j.add_argument("--dir", help=DIR_HELP)
    j.set_defaults(func=jwks)

    e = kinds.add_parser("emitter", help="the emitter key set the chain worker checks events with",
                         description="Emitter keys sign events where they are made; the chain worker checks each "
                                     "against the emitter key set (<keys>/emitters/jwks.json). Rotation: a new key "
                                     "first, then retire the old.")
    verbs = e.add_subparsers(dest="verb", required=True, metavar="{new,add,retire,list}")
    n = verbs.add_parser("new", help="make an emitter's key and register it")
    n.add_argument("name", help="the emitter's name, e.g. billing-service")
    n.add_argument("--no-register", action="store_true", help="make the key only, print its public JWK (for `add` "
                                                              "where the chain worker runs)")
    n.set_defaults(func=emitter_new)
    a = verbs.add_parser("add", help="register a public key made on another host (`new NAME --no-register` there)")
    a.add_argument("name")
    a.add_argument("jwk_file", metavar="JWK_FILE", help="the public JWK, as `new --no-register` printed it")
    a.set_defaults(func=emitter_add)
    r = verbs.add_parser("retire", help="end a key: events it signs from then on are refused")
    r.add_argument("kid", metavar="KID")
    r.add_argument("--at", help="from when (RFC 3339; default now)")
    r.set_defaults(func=emitter_retire)
    ls = verbs.add_parser("list", help="the registered emitter keys")
    ls.set_defaults(func=emitter_list)
    for v in (n, a, r, ls):
        v.add_argument("--dir", help=DIR_HELP)

    an = kinds.add_parser("analyst", help="the analyst key set status changes (ack, resolve, reopen) are checked with",
                          description="Each analyst signs their status changes with their own key; the status chain "
                                      "worker refuses a change no key registered for the analyst it names signed "
                                      "(<keys>/analysts/jwks.json). A console's key (--console) signs for the person "
                                      "signed in to it, and its changes say so.")
    averbs = an.add_subparsers(dest="verb", required=True, metavar="{new,add,retire,list}")
    an_new = averbs.add_parser("new", help="make an analyst's key and register it")
    an_new.add_argument("name", help="the analyst, e.g. alice@acme.example")
    an_new.add_argument("--console", action="store_true", help="a console's key (signs for whoever is signed in)")
    an_new.add_argument("--no-register", action="store_true", help="make the key only, print its public JWK (for "
                                                                   "`add` where the chain worker runs)")
    an_new.set_defaults(func=analyst_new)
    an_add = averbs.add_parser("add", help="register a public key made on another host (`new NAME --no-register`)")
    an_add.add_argument("name")
    an_add.add_argument("jwk_file", metavar="JWK_FILE", help="the public JWK, as `new --no-register` printed it")
    an_add.add_argument("--console", action="store_true", help="a console's key")
    an_add.set_defaults(func=analyst_add)
    an_ret = averbs.add_parser("retire", help="end a key: changes it signs from then on are refused")
    an_ret.add_argument("kid", metavar="KID")
    an_ret.add_argument("--at", help="from when (RFC 3339; default now)")
    an_ret.set_defaults(func=analyst_retire)
    an_ls = averbs.add_parser("list", help="the registered analyst and console keys")
    an_ls.set_defaults(func=analyst_list)
    for v in (an_new, an_add, an_ret, an_ls):
        v.add_argument("--dir", help=DIR_HELP)

    o = kinds.add_parser("operator", help="the operator key that seals exports",
                         description="Made in <keys>/../operator/, apart from the workers' keys; its public key is "
                                     "what verifiers pin (verify --operator-key, the trust file).")
    ops = o.add_subparsers(dest="verb", required=True, metavar="{new,show}")
    on = ops.add_parser("new", help="make the operator key (never replaces one)")
    on.set_defaults(func=operator_new)
    sh = ops.add_parser("show", help="print the operator public key (base64)")
    sh.set_defaults(func=operator_show)
    for v in (on, sh):
        v.add_argument("--dir", help=DIR_HELP)

    hi = kinds.add_parser("history", help="each emitter and analyst key set the chain workers used, and what changed",
                          description="From the key-set chain (kind key_set): each version of a key set as a chain "
                                      "worker first checked with it, with the keys it added, removed and retired.")
    hi.add_argument("--set", dest="key_set", choices=("emitters", "analysts"), help="one key set (default: both)")
    add_format(hi)
    hi.set_defaults(func=history)


def _keys_dir(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.dir) if args.dir else settings.signing.keys_dir


def generate(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.keys import generate_key

    keys_dir = _keys_dir(args, settings)
    path, kid = generate_key(keys_dir)
    print(f"new Ed25519 key {kid}\n  private key: {path} (mode 0600)\n  JWKS: {keys_dir / 'jwks.json'}")
    return 0


def jwks(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.keys import read_jwks

    print(json.dumps(read_jwks(_keys_dir(args, settings)), indent=2))
    return 0


def _operator_key_path(args: argparse.Namespace, settings: Settings) -> Path:
    from aiaudit.pipeline.keys import operator_key_file

    return operator_key_file(_keys_dir(args, settings), None if args.dir else settings.signing.operator_key_file)


def operator_new(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.keys import OPERATOR_PUB, ensure_operator_key

    path = _operator_key_path(args, settings)
    if not ensure_operator_key(path):
        raise ConfigError(f"an operator key exists at {path}: it is not replaced (verifiers pin its public key)")
    print(f"new operator key\n  private key: {path} (mode 0600): for whoever exports evidence\n  public key "
          f"(pin it: verify --operator-key, the trust file's operator_keys): {path.with_name(OPERATOR_PUB)}")
    return 0


def operator_show(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.keys import OPERATOR_PUB, read_operator_public_key

    raw = read_operator_public_key(_operator_key_path(args, settings).with_name(OPERATOR_PUB))
    print(base64.b64encode(raw).decode("ascii"))
    return 0


def _set_file(args: argparse.Namespace, settings: Settings) -> Path:
    from aiaudit.pipeline.contract import emitter_keys as ek

    return ek.key_set_file(settings) if not args.dir else Path(args.dir) / ek.EMITTERS_DIR / ek.KEY_SET_FILE


def emitter_new(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.contract import emitter_keys as ek

    set_file = _set_file(args, settings)
    folder = _keys_dir(args, settings) / ek.EMITTERS_DIR
    path, kid, jwk = ek.new_emitter_key(folder, args.name, None if args.no_register else set_file)
    print(f"new emitter key {kid} for {args.name!r}\n  private key: {path} (mode 0600): give it to the emitter "
          f"as AIAUDIT_EMITTER__KEY_FILE\n  " + (f"public key (register it with `aiaudit keys emitter add "
          f"{args.name} FILE` where the chain worker runs):\n{json.dumps(jwk)}" if args.no_register
          else f"registered in {set_file}"))
    return 0


def emitter_add(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.contract import emitter_keys as ek

    set_file = _set_file(args, settings)
    try:
        jwk = json.loads(Path(args.jwk_file).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{args.jwk_file}: not a readable JSON public key (JWK): {exc}") from None
    if not isinstance(jwk, dict):
        raise ConfigError(f"{args.jwk_file}: a JWK is a JSON object")
    kid = ek.register_emitter_key(set_file, args.name, jwk)
    print(f"emitter key {kid} registered for {args.name!r} in {set_file}")
    return 0


def emitter_retire(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.contract import emitter_keys as ek
    from aiaudit.pipeline.contract.signature import utc_now_text

    name = ek.retire_emitter_key(_set_file(args, settings), args.kid, args.at or utc_now_text())
    print(f"emitter key {args.kid} ({name}) retired from {args.at or 'now'}: events it signs from then on are "
          "refused; records it signed before still verify")
    return 0


def emitter_list(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.contract import emitter_keys as ek

    set_file = _set_file(args, settings)
    doc = ek.read_key_set(set_file, missing_ok=True)
    if not doc["keys"]:
        print(f"no emitter keys in {set_file}: `aiaudit keys emitter new NAME` makes one")
    for jwk in doc["keys"]:
        window = f"  until {jwk['not_after']}" if "not_after" in jwk else ""
        print(f"{jwk['emitter']:<24} {jwk.get('kid', '?')}{window}")
    return 0


def _analyst_set(args: argparse.Namespace, settings: Settings) -> Path:
    from aiaudit.pipeline.contract import analyst_keys as ak

    return ak.key_set_file(settings) if not args.dir else Path(args.dir) / ak.ANALYSTS_DIR / ak.KEY_SET_FILE


def analyst_new(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.contract import analyst_keys as ak

    set_file = _analyst_set(args, settings)
    path, kid, jwk = ak.new_analyst_key(_keys_dir(args, settings) / ak.ANALYSTS_DIR, args.name,
                                        None if args.no_register else set_file, console=args.console)
    who = "console" if args.console else "analyst"
    print(f"new {who} key {kid} for {args.name!r}\n  private key: {path} (mode 0600): give it to the {who} "
          f"only, as AIAUDIT_SIGNING__ANALYST_KEY_FILE (or --key)\n  " + (
              f"public key (register it with `aiaudit keys analyst add {args.name} FILE` where the chain worker "
              f"runs):\n{json.dumps(jwk)}" if args.no_register else f"registered in {set_file}"))
    return 0


def analyst_add(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.contract import analyst_keys as ak

    set_file = _analyst_set(args, settings)
    try:
        jwk = json.loads(Path(args.jwk_file).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{args.jwk_file}: not a readable JSON public key (JWK): {exc}") from None
    if not isinstance(jwk, dict):
        raise ConfigError(f"{args.jwk_file}: a JWK is a JSON object")
    kid = ak.register_analyst_key(set_file, args.name, jwk, console=args.console)
    print(f"{'console' if args.console else 'analyst'} key {kid} registered for {args.name!r} in {set_file}")
    return 0


def analyst_retire(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.contract import analyst_keys as ak
    from aiaudit.pipeline.contract.signature import utc_now_text

    name = ak.retire_analyst_key(_analyst_set(args, settings), args.kid, args.at or utc_now_text())
    print(f"analyst key {args.kid} ({name}) retired from {args.at or 'now'}: changes it signs from then on are "
          "refused; those it signed before still verify")
    return 0


def analyst_list(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.contract import analyst_keys as ak
    from aiaudit.pipeline.contract.analysts import owner

    set_file = _analyst_set(args, settings)
    doc = ak.read_analyst_key_set(set_file, missing_ok=True)
    if not doc["keys"]:
        print(f"no analyst keys in {set_file}: `aiaudit keys analyst new NAME` makes one")
    for jwk in doc["keys"]:
        name, console = owner(jwk)
        window = f"  until {jwk['not_after']}" if "not_after" in jwk else ""
        print(f"{name:<32} {'console' if console else 'analyst':<8} {jwk.get('kid', '?')}{window}")
    return 0


def history(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.cli.output import print_rows
    from aiaudit.pipeline.store import key_sets

    client = store.open_reads(settings, "keys")
    names, rows = store.query_rows(client, *key_sets.select_history(store.database(settings), args.key_set))
    by_set: dict[str, list[dict[str, object]]] = {}
    for r in rows:
        entry = dict(zip(names, r))
        by_set.setdefault(str(entry["key_set"]), []).append(entry)
    out = []
    for versions in by_set.values():
        for c in key_sets.changes(versions):
            named = c["names"]
            out.append({"key_set": c["key_set"], "first_used_at": c["first_used_at"], "sha256": c["sha256"][:16],
                        "keys": len(c["kids"]),
                        "added": ", ".join(f"{named.get(k)} {k[:12]}" for k in c["added"]),
                        "retired": ", ".join(f"{named.get(k)} {k[:12]}" for k in c["retired"]),
                        "removed": ", ".join(k[:12] for k in c["removed"]), "workers": ", ".join(c["workers"])})
    if not out and args.format == "table":
        print("(no key set recorded yet: a chain worker records each one as it first checks with it)")
        return 0
    print_rows(out, args.format)
    return 0
