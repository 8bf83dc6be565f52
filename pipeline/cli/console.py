"""`aiaudit console serve|account`: the web console, and its accounts."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiaudit.pipeline.cli.args import add_verbose, start_logging
from aiaudit.pipeline.cli.output import print_rows
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings

if TYPE_CHECKING:
    from aiaudit.pipeline.console.app import Console


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("console", help="the web console: serve it, manage its accounts",
                       description="A web interface for auditors, the SOC and analysts: overview, records, a record's "
                                   "proofs, incidents (acknowledge, resolve), policies, reports, keys, access records. "
                                   "Every page view is an access record signed by the console's key.")
    actions = p.add_subparsers(dest="action", required=True, metavar="{serve,account}")
    s = actions.add_parser("serve", help="serve the console (127.0.0.1:8700 unless told otherwise)")
    s.add_argument("--host", help="address to bind (default AIAUDIT_CONSOLE__HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default AIAUDIT_CONSOLE__PORT or 8700)")
    s.add_argument("--trust", metavar="FILE", help="the trust file records are checked against "
                                                   "(default AIAUDIT_CONSOLE__TRUST_FILE; `aiaudit trust init`)")
    s.add_argument("--key", metavar="FILE", help="the console's key (default AIAUDIT_CONSOLE__KEY_FILE; "
                                                 "`aiaudit keys analyst new NAME --console`)")
    s.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus /metrics on this port")
    s.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST")
    add_verbose(s)
    s.set_defaults(func=serve)
    acc = actions.add_parser("account", help="console accounts: add, list, remove")
    acc_actions = acc.add_subparsers(dest="account_action", required=True, metavar="{add,list,remove}")
    add = acc_actions.add_parser("add", help="add an account (its password read from the terminal, or stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["auditor", "soc", "analyst", "admin"])
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--replace", action="store_true", help="set an existing account's role and password anew")
    add.set_defaults(func=add_account)
    ls = acc_actions.add_parser("list", help="the accounts and their roles")
    ls.set_defaults(func=list_accounts)
    rm = acc_actions.add_parser("remove", help="remove an account (its sessions end when they next ask)")
    rm.add_argument("name")
    rm.set_defaults(func=remove_account)


def add_account(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.console.accounts import Accounts, accounts_file

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ")
    accounts = Accounts(accounts_file(settings))
    accounts.add(args.name, args.role, password, replace=args.replace)
    print(f"console account {args.name} ({args.role}) in {accounts.path}")
    return 0


def list_accounts(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.console.accounts import Accounts, accounts_file

    print_rows(Accounts(accounts_file(settings)).list(), "table")
    return 0


def remove_account(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.console.accounts import Accounts, accounts_file

    Accounts(accounts_file(settings)).remove(args.name)
    print(f"removed console account {args.name}")
    return 0


def build(settings: Settings, trust_file: Path | None, key_file: Path | None) -> "Console":
    """The console app from settings (the trust file and the console key are required)."""
    from aiaudit.pipeline.console.accounts import Accounts, accounts_file
    from aiaudit.pipeline.console.app import Console
    from aiaudit.pipeline.contract.analyst_keys import load_status_signer
    from aiaudit.pipeline.errors import SigningKeyError
    from aiaudit.pipeline.keys import load_operator_key, operator_key_file
    from aiaudit.pipeline.store.access_log import reader_key
    from aiaudit.pipeline.verify.trust import parse_trust

    trust_path = trust_file or settings.console.trust_file
    if trust_path is None:
        raise ConfigError("the console checks every record it shows against a trust file: give --trust FILE or "
                          "AIAUDIT_CONSOLE__TRUST_FILE (`aiaudit trust init --out FILE` writes one)")
    try:
        trust = parse_trust(trust_path.read_text(encoding="utf-8"), str(trust_path))
    except OSError as exc:
        raise ConfigError(f"{trust_path}: cannot read the trust file: {exc.strerror}") from exc
    key_path = key_file or settings.console.key_file or reader_key(settings)
    if key_path is None:
        raise ConfigError("the console signs every page view's access record and every acknowledgement for the person "
                          "signed in: make its key with `aiaudit keys analyst new console --console` and give it as "
                          "--key FILE or AIAUDIT_CONSOLE__KEY_FILE")
    signer = load_status_signer(key_path)
    operator_path = operator_key_file(settings.signing.keys_dir, settings.signing.operator_key_file)
    try:
        operator = load_operator_key(operator_path)
    except SigningKeyError:
        operator = None
    oidc = None
    if settings.console.oidc_issuer:
        from aiaudit.pipeline.console.app import public_url
        from aiaudit.pipeline.console.oidc import OidcSignIn

        oidc = OidcSignIn.from_settings(settings, public_url(settings))
    path = accounts_file(settings)
    accounts: Accounts | None = Accounts(path)
    if accounts is not None and not accounts.list():
        if oidc is None:
            raise ConfigError(f"no one can sign in: add a console account (`aiaudit console account add NAME --role "
                              f"auditor`, kept in {path}) or set AIAUDIT_CONSOLE__OIDC_ISSUER")
        accounts = None  # the provider only: no account form on the sign-in page
    return Console(settings, trust=trust, signer=signer, operator=operator, accounts=accounts, oidc=oidc)


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    start_logging(args.verbose)
    settings = settings.updated(console={k: v for k, v in (("host", args.host), ("port", args.port)) if v})
    console = build(settings, Path(args.trust) if args.trust else None, Path(args.key) if args.key else None)
    if args.metrics_port:
        from aiaudit.pipeline import metrics

        metrics.serve(args.metrics_port, args.metrics_host)
    c = settings.console
    print(f"aiaudit console on {console.public_url} (signing as {console.signer.name}, key {console.signer.key.kid}); "
          f"sign-in: {'accounts' if console.accounts else ''}{' and ' if console.accounts and console.oidc else ''}"
          f"{'OIDC ' + str(c.oidc_issuer) if console.oidc else ''}"
          f"{'' if console.operator else '; no operator key: proof bundles and reports are not made here'}",
          file=sys.stderr)
    uvicorn.run(console.app(), host=c.host, port=c.port, log_level="warning", access_log=False)
    return 0
