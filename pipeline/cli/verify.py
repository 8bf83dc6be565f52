"""`aiaudit verify`: verify the chains in the store, or an export file, against pinned keys."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiaudit.pipeline.cli.args import add_filters, duration, filters, positive, time
from aiaudit.pipeline.cli.output import warn
from aiaudit.pipeline.errors import ConfigError, SigningKeyError
from aiaudit.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verify", help="verify chains: signatures, links, seqs, forks, columns, emitter gaps",
                       description="Verify every chain in ClickHouse (or one, or a time range), or an export file. "
                                   "Prints one line per failure and a summary; exits 1 on any failure.")
    add_filters(p)
    p.add_argument("--export", metavar="FILE", help="verify an `aiaudit export` JSONL file instead of ClickHouse")
    p.add_argument("--report", metavar="DIR", help="verify an `aiaudit report` folder: its sealed manifest, its export, "
                                                   "and every figure recomputed from the export (offline)")
    p.add_argument("--trust", metavar="FILE", help="the pinned trust file (`aiaudit trust init`): record keys (with "
                   "validity windows), checkpoint, operator and emitter keys, witnesses and the cosignatures "
                   "required; overrides the keys folder")
    keys = p.add_argument_group("keys, when there is no trust file")
    keys.add_argument("--jwks", metavar="FILE", help="JWKS with the record public keys (default: the keys folder's "
                      "jwks.json)")
    keys.add_argument("--operator-key", metavar="FILE",
                      help="the operator public key (.pub, base64) an export's header must be sealed by (default: "
                           "operator/operator.pub beside the keys folder)")
    keys.add_argument("--checkpoint-key", metavar="FILE",
                      help="the checkpoint public key (.pub, base64) that signed checkpoints must verify under "
                           "(default: the keys folder's checkpoint/checkpoint.pub)")
    keys.add_argument("--emitter-keys", metavar="FILE", help="the emitter key set each event's emitter signature is "
                      "checked with (default: the keys folder's emitters/jwks.json, when there is one)")
    keys.add_argument("--analyst-keys", metavar="FILE", help="the analyst key set each status change's signature "
                      "is checked with (default: the keys folder's analysts/jwks.json, when there is one)")
    keys.add_argument("--require-emitter-signatures", action="store_true", help="an event without an emitter "
                      "signature fails (unauthenticated_emitter); records chained before emitters signed do too")
    keys.add_argument("--witness", metavar="URL", help="also compare every chain with what this witness last "
                      "cosigned")
    keys.add_argument("--witness-key", metavar="VKEY", help="the witness's pinned verifier key (name+keyid+base64)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--max-age", type=duration, metavar="DURATION",
                   help="the tail rule: fail (stale) a chain whose newest signed time (the log's timestamps and "
                        "heartbeats, witness cosignatures) is older than this at --as-of, e.g. 15m; default: the "
                        "trust file's max_checkpoint_age, else ten heartbeat intervals (5m with the defaults)")
    p.add_argument("--as-of", type=time, metavar="TIME",
                   help="the time the tail rule judges freshness at (default: an export's own export time, else "
                        "now); apart from --until, which only selects records")
    p.add_argument("--no-tail-rule", action="store_true",
                   help="switch the tail rule off (shown in the result): removed newest records with their "
                        "checkpoints then go unseen")
    p.add_argument("--state", metavar="FILE",
                   help="the auditor's monitor state: each chain must be consistent with the newest checkpoint a "
                        "previous run verified (inconsistent_with_state otherwise: a rewrite, however well "
                        "re-signed and cosigned); a passing run advances it. Created on first use")
    p.add_argument("--allow-unanchored", action="store_true",
                   help="an export without signed checkpoints (written before checkpoints existed) or without a "
                        "seal passes with a warning instead of failing unanchored / unsealed")
    p.add_argument("--workers", type=positive, metavar="N",
                   help="processes checking signatures and hashes (default: one per core; 1: none besides this one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    trust = _trust(args, settings)
    with _checker(args.workers, trust.keyring) as checker:
        return _verify(args, settings, trust, checker)


def _trust(args: argparse.Namespace, settings: Settings) -> Any:
    """What this verification trusts: the pinned trust file (--trust), else the keys folder's JWKS and
    checkpoint.pub (or --jwks / --checkpoint-key) with an optional --witness."""
    from aiaudit.pipeline.chain.note import NoteError, Verifier
    from aiaudit.pipeline.contract.analyst_keys import key_set_file as analyst_key_set_file
    from aiaudit.pipeline.contract.analyst_keys import load_analyst_keys
    from aiaudit.pipeline.contract.emitter_keys import key_set_file, load_emitter_keys
    from aiaudit.pipeline.keys import (
        OPERATOR_PUB,
        KeyRing,
        checkpoint_key_file,
        operator_key_file,
        read_checkpoint_public_key,
        read_jwks,
        read_operator_public_key,
    )
    from aiaudit.pipeline.verify.trust import Trust, parse_trust

    if args.trust:
        path = Path(args.trust)
        try:
            trust = parse_trust(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the trust file: {exc.strerror}") from exc
        if args.witness or args.jwks or args.checkpoint_key or args.emitter_keys or args.operator_key \
                or args.analyst_keys:
            raise ConfigError("--trust holds the keys and witnesses: leave out --jwks, --checkpoint-key, --witness, "
                              "--emitter-keys, --analyst-keys, --operator-key")
        return trust
    if not args.jwks and not (settings.signing.keys_dir / "jwks.json").exists():
        raise ConfigError(f"no keys to verify with: {settings.signing.keys_dir} holds no jwks.json. An auditor verifies "
                          "with the trust file the operator gave (--trust FILE), or with the public keys themselves: "
                          "--jwks FILE --checkpoint-key FILE (and --operator-key FILE for an export)")
    keyring = KeyRing.from_jwks(read_jwks(Path(args.jwks) if args.jwks else settings.signing.keys_dir))
    emitter_set = Path(args.emitter_keys) if args.emitter_keys else key_set_file(settings)
    if args.emitter_keys or emitter_set.exists():
        keyring = keyring.with_emitters(load_emitter_keys(emitter_set, required=args.require_emitter_signatures))
    elif args.require_emitter_signatures:
        raise ConfigError(f"--require-emitter-signatures needs the emitter key set: none at {emitter_set} "
                          "(--emitter-keys FILE)")
    else:
        warn(f"emitter signatures not checked: no emitter key set at {emitter_set} (--emitter-keys FILE)")
    analyst_set = Path(args.analyst_keys) if args.analyst_keys else analyst_key_set_file(settings)
    if args.analyst_keys or analyst_set.exists():
        keyring = keyring.with_analysts(load_analyst_keys(analyst_set))
    else:
        warn(f"analysts' signatures on status changes not checked: no analyst key set at {analyst_set} "
             "(--analyst-keys FILE)")
    keys: tuple[bytes, ...] = ()
    pub = Path(args.checkpoint_key) if args.checkpoint_key else checkpoint_key_file(
        settings.signing.keys_dir, settings.signing.checkpoint_key_file)
    try:
        keys = (read_checkpoint_public_key(pub),)
    except SigningKeyError as exc:
        warn(f"checkpoints not checked: {exc}")
    operator_keys: tuple[bytes, ...] = ()
    if args.export or args.report:
        pub = Path(args.operator_key) if args.operator_key else operator_key_file(
            settings.signing.keys_dir, settings.signing.operator_key_file).with_name(OPERATOR_PUB)
        try:
            operator_keys = (read_operator_public_key(pub),)
        except SigningKeyError as exc:
            warn(f"the export's seal cannot be checked: {exc}")
    witnesses: tuple[tuple[Verifier, str | None], ...] = ()
    if args.witness:
        if not args.witness_key:
            raise ConfigError("--witness needs --witness-key (the witness's pinned verifier key)")
        try:
            witnesses = ((Verifier.from_vkey(args.witness_key), args.witness),)
        except NoteError as exc:
            raise ConfigError(f"--witness-key: {exc}") from exc
    return Trust(keyring, keys, witnesses, 0, None, operator_keys=operator_keys)


@contextlib.contextmanager
def _checker(workers: int | None, keyring: Any) -> Iterator[Any]:
    """Per-record checks in `workers` processes (default: one per core); 1 checks inline."""
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n <= 1:
        yield None
        return
    from aiaudit.pipeline.verify.pool import CheckPool

    with CheckPool(keyring, n) as pool:
        yield pool


def default_max_age_s(settings: Settings) -> int:
    """The tail rule's default: ten heartbeat intervals (5 minutes with the default 30 s): a running
    chain worker signs a time at least every interval, so only a stopped logger, or a removed tail
    of records and checkpoints, is older."""
    return int(10 * settings.chain.heartbeat_interval_s)


def _tail_rule(args: argparse.Namespace, trust: Any, settings: Settings,
               exported_at: str | None = None) -> tuple[int, int] | None:
    """(the time judged at, max age) in unix seconds; None only with --no-tail-rule. Judged at
    --as-of, else an export's own export time, else now: never at the records filter's --until."""
    if args.no_tail_rule:
        return None
    max_age = args.max_age if args.max_age is not None else trust.max_checkpoint_age_s
    if max_age is None:
        max_age = default_max_age_s(settings)
    if args.as_of is not None:
        at = args.as_of
    elif exported_at is not None:
        from aiaudit.pipeline.contract import parse_ts

        try:
            at = parse_ts(exported_at)
        except ValueError as exc:
            raise ConfigError(f"the export's exported_at {exported_at[:40]!r} is not an RFC 3339 time: give --as-of") \
                from exc
    else:
        at = datetime.now(timezone.utc)
    return int(at.timestamp()), max_age
def _verify(args: argparse.Namespace, settings: Settings, trust: Any, checker: Any) -> int:
    from aiaudit.pipeline.verify import monitor
    from aiaudit.pipeline.verify.run import verify_export

    state_file = Path(args.state) if args.state else None
    pins = monitor.read_state(state_file) if state_file else {}
    if args.report:
        if args.export or state_file:
            raise ConfigError("--report checks a report folder on its own: leave out --export and --state")
        return _verify_report(args, trust)

    if args.export:
        from aiaudit.pipeline.export.read import read_export_file

        if trust.witnesses and any(url for _, url in trust.witnesses) and not args.trust:
            raise ConfigError("--witness asks a live witness about the store; an export carries its cosignatures")
        file = read_export_file(Path(args.export), lenient=True)
        tail = _tail_rule(args, trust, settings, file.header.exported_at if file.header else None)
        report = verify_export(file, trust, checker=checker, tail=tail, allow_unanchored=args.allow_unanchored,
                               pins=pins)
        whole = file.selection == "whole"
    else:
        from aiaudit.pipeline import store
        from aiaudit.pipeline.verify.sources import verify_store

        client = store.open_reads(settings, "verify")
        whole = args.since is None and args.until is None
        progress = None if args.json else (lambda line: print(f"  verified {line}", file=sys.stderr))
        window = None
        if not whole:
            from aiaudit.pipeline.contract import format_ts

            window = (format_ts(args.since) if args.since else "", format_ts(args.until) if args.until else "\uffff")
        report = verify_store(client, settings, trust, filters(args), whole=whole, reconcile=args.origin is None,
                              window=window, progress=progress, checker=checker,
                              tail=(tail := _tail_rule(args, trust, settings)), pins=pins)
        whole = whole and args.origin is None and not filters(args).selects_records
    if tail is None:
        report.warnings.append("WARN the tail rule is off (--no-tail-rule): the removal of a chain's newest records "
                               "together with their checkpoints would not be seen")
    else:
        report.tail = tail
    if state_file is not None:
        if whole:
            report.failures.extend(monitor.gone(pins, (c.origin for c in report.chains)))
        if report.ok:
            from aiaudit.pipeline.contract import format_ts

            advanced = monitor.write_state(state_file, pins, report.anchors, format_ts(datetime.now(timezone.utc)))
            report.warnings.append(f"monitor state {state_file}: {advanced} chain(s) advanced, consistent with the "
                                   f"{len(pins)} verified before")
        else:
            report.warnings.append(f"monitor state {state_file}: not advanced (this run failed)")
    print(report.json_text() if args.json else report.text())
    return 0 if report.ok else 1


def _verify_report(args: argparse.Namespace, trust: Any) -> int:
    """A report folder: the manifest's seal, each file's hash, the export, every figure again."""
    import json

    from aiaudit.pipeline.report.pack import check_report

    problems, verified, report = check_report(Path(args.report), trust)
    ok = not problems and verified is not None and verified.ok
    if args.json:
        print(json.dumps({"ok": ok, "problems": problems,
                          "export": json.loads(verified.json_text()) if verified is not None else None}))
        return 0 if ok else 1
    if verified is not None:
        print(verified.text())
    for problem in problems:
        print(f"FAIL report: {problem}")
    if ok and report is not None:
        facts = report["facts"]
        from aiaudit import __version__

        print(f"OK report {args.report}: sealed by a pinned operator key; every file as sealed; every figure is what "
              f"the verified export gives for {facts['since']} to {facts['until']} (written by aiaudit "
              f"{str(facts.get('version'))[:40]}, checked by aiaudit {__version__})")
    elif not problems and verified is not None:
        print(f"FAIL report {args.report}: its export does not verify (above)")
    return 0 if ok else 1
