"""The `aiaudit` command line. Errors become one line and an exit code here, and only here."""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiaudit.pipeline.contract.schema import DECISIONS, LEVELS
from aiaudit.pipeline.errors import AiAuditError, ConfigError, InfraError, SigningKeyError, StoreError
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store.filters import MAX_LIMIT, Filters


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {MAX_LIMIT:,}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 256")
    return value


def _duration(text: str) -> int:
    """Seconds of a duration like 15m (argparse type)."""
    from aiaudit.pipeline.timespec import parse_duration

    try:
        return int(parse_duration(text).total_seconds())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _time(text: str) -> datetime:
    """An RFC 3339 time, or a duration ago such as 7d (argparse type)."""
    from aiaudit.pipeline.timespec import parse_time

    try:
        return parse_time(text, datetime.now(timezone.utc))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters")
    g.add_argument("--actor", help="identity: the person or agent, or the person an agent acted for")
    g.add_argument("--since", type=_time, help="from this time (inclusive): RFC 3339 (2026-11-01T00:00:00Z) or a "
                   "duration ago (7d, 2h, 30m)")
    g.add_argument("--until", type=_time, help="to this time (exclusive), in the same forms")
    g.add_argument("--vendor", dest="provider", help="AI vendor (gen_ai.provider.name), e.g. openai")
    g.add_argument("--model", help="requested model")
    g.add_argument("--policy-version", help="policy version that decided")
    g.add_argument("--decision", choices=DECISIONS)
    g.add_argument("--classification", choices=LEVELS, help="prompt data classification")
    g.add_argument("--route")
    g.add_argument("--origin", help="one chain, e.g. acme/dev/ai.requests/p0/g1")
    g.add_argument("--event-id", help="one request by its event id (a gateway answer's X-Request-Id)")


def _filters(args: argparse.Namespace, limit: int = 100) -> Filters:
    try:
        return Filters(actor=args.actor, since=args.since, until=args.until, provider=args.provider, model=args.model,
                       policy_version=args.policy_version, decision=args.decision, classification=args.classification,
                       route=args.route, origin=args.origin, event_id=args.event_id, limit=limit)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


@contextlib.contextmanager
def _model_errors() -> Iterator[None]:
    """detectors/ raises its own ArtifactRefused (it imports nothing of the pipeline): a ConfigError here."""
    from aiaudit.detectors.model import ArtifactRefused

    try:
        yield
    except ArtifactRefused as exc:
        raise ConfigError(str(exc)) from exc


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


# --- commands -------------------------------------------------------------------------


def cmd_infra(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.infra.kafka.broker import LocalKafka

    kafka = LocalKafka(settings)
    if args.action == "up":
        kafka.up()
        print(f"Kafka: {kafka.status()}")
    elif args.action == "topics":
        from aiaudit.infra.topics import ensure_topics

        created = ensure_topics(settings, replication_factor=args.replication_factor)
        print(f"created: {', '.join(created)}" if created else "all topics exist")
    elif args.action == "down":
        print("Kafka: stopped" if kafka.down() else "Kafka: was not running")
    else:
        print(f"Kafka: {kafka.status()}")
        print(f"ClickHouse: {settings.clickhouse_dsn().split('@')[-1]}")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.ops.supervisor import start_worker, stop_on_signals, supervise

    _logging(args.verbose)
    if args.role == "score":
        from aiaudit.detectors.rules import RULES_VERSION
        from aiaudit.pipeline.keys import KeyRing, read_jwks
        from aiaudit.pipeline.score.models import LiveModel, rule_config
        from aiaudit.pipeline.score.worker import ScoreWorker

        with _model_errors():
            model = LiveModel(settings.score.models_dir, KeyRing.from_jwks(read_jwks(settings.signing.keys_dir)))
        rules = rule_config(settings)
        if rules.vendor_max_level is None:
            logging.getLogger("aiaudit.score").warning(
                "no AIAUDIT_SCORE__POLICY_FILE: the rules that need each vendor's max_level (sensitive data to an "
                "unapproved vendor, responses above the route's level) are off; secrets sent anywhere are flagged")
        else:
            logging.getLogger("aiaudit.score").info("rules %s with the vendors of %s: %s", RULES_VERSION,
                                                    settings.score.policy_file, rules.vendor_max_level)
        from aiaudit.pipeline.keys import load_or_create_scorer_key, scorer_key_file

        key_file = scorer_key_file(settings.signing.keys_dir, settings.score.finding_key_file)
        finding_key, created = load_or_create_scorer_key(key_file)
        if created:
            logging.getLogger("aiaudit.score").warning(
                "created the scorer key %s: the delivery agent delivers only findings it signs (pin %s)", key_file,
                key_file.with_name("scorer.pub"))
        ScoreWorker(settings, model, rules=rules, instance_id=args.instance_id,
                    finding_key=finding_key).run(stop_on_signals())
        return 0
    if args.role == "deliver":
        from aiaudit.pipeline.deliver.agent import run
        from aiaudit.pipeline.deliver.config import load_targets

        if settings.deliver.destinations_file is None:
            raise ConfigError("the delivery agent needs a destinations file: set AIAUDIT_DELIVER__DESTINATIONS_FILE "
                              "(docs/delivery.md shows one)")
        from aiaudit.pipeline.keys import SCORER_PUB, read_scorer_public_key, scorer_key_file

        targets = load_targets(settings.deliver.destinations_file)
        pubs = settings.deliver.finding_keys or [
            scorer_key_file(settings.signing.keys_dir, settings.score.finding_key_file).with_name(SCORER_PUB)]
        finding_keys = [read_scorer_public_key(p) for p in pubs]  # a missing one stops the agent, named
        logging.getLogger("aiaudit.deliver").info("destinations: %s", ", ".join(map(repr, targets)))
        run(settings, targets, finding_keys, verbose=args.verbose)
        return 0
    if args.role == "all":
        procs = [start_worker(role) for role in ("chain", "sink")]
        return supervise(procs, stop_on_signals())
    stop = stop_on_signals()
    if args.role == "chain":
        from aiaudit.pipeline.chain.worker import ChainWorker
        from aiaudit.pipeline.keys import active_key_file, checkpoint_key_file, load_checkpoint_key, load_signer

        sg = settings.signing
        signer = load_signer(active_key_file(sg.keys_dir, sg.key_file))
        checkpoint_key = load_checkpoint_key(checkpoint_key_file(sg.keys_dir, sg.checkpoint_key_file))
        logging.getLogger("aiaudit").info("chain worker signing records with kid %s; checkpoints every %.1fs",
                                          signer.kid, settings.chain.checkpoint_interval_s)
        ChainWorker(settings, signer, checkpoint_key=checkpoint_key, instance_id=args.instance_id).run(stop)
    else:
        from aiaudit.pipeline.sink.worker import SinkWorker

        SinkWorker(settings).run(stop, serve_reads=settings.clickhouse_dsn().startswith("chdb://"))
    return 0


def cmd_emit(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.contract import from_json_event
    from aiaudit.pipeline.emit.producer import Emitter
    from aiaudit.pipeline.emit.synthetic import SyntheticEvents

    if args.file:
        try:
            fh = open(args.file, encoding="utf-8")  # noqa: SIM115  # closed below; opened before any broker work
        except OSError as exc:
            raise ConfigError(f"{args.file}: cannot read the events file: {exc.strerror}") from None
    emitter = Emitter(settings, emitter_id=args.emitter_id)
    emitter.check_broker()
    sent = 0
    if args.file:
        with fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    emitter.emit(from_json_event(json.loads(line)))
                except (ValueError, AiAuditError) as exc:
                    raise ConfigError(f"{args.file}:{lineno}: {exc} (nothing after this line was sent)") from exc
                sent += 1
    else:
        gen = SyntheticEvents(args.seed, datetime.now(timezone.utc), emitter.emitter_id)
        for i in range(args.synthetic):
            emitter.emit(gen.next_event())
            sent += 1
            if (i + 1) % 10_000 == 0:
                print(f"  emitted {i + 1}/{args.synthetic}", file=sys.stderr)
    emitter.flush()
    print(f"emitted {sent} events as {emitter.emitter_id}; {emitter.delivered} acknowledged by the broker")
    return 0


def _print_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":  # one JSON array
        print(json.dumps(rows, default=str, indent=1))
        return
    if fmt == "jsonl":  # JSON Lines: one object per line
        for row in rows:
            print(json.dumps(row, default=str))
        return
    if not rows:
        print("(no records)")
        return
    cols = list(rows[0])
    if fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
        return
    text = [[("" if r[c] is None else str(r[c])) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in text)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for t in text:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query.api import find_records
    from aiaudit.pipeline.store import evidence

    columns = evidence.QUERY_COLUMNS if args.all_columns else evidence.DEFAULT_COLUMNS
    # One row more than asked: whether the result was cut is then known without counting.
    rows = find_records(store.connect(settings, must_exist=True), settings, _filters(args, min(args.limit + 1, MAX_LIMIT)), columns)
    cut = len(rows) > args.limit
    rows = rows[:args.limit]
    _print_rows(rows, args.format)
    print(f"{len(rows)} record(s)", file=sys.stderr)
    if cut:
        _more_notice(len(rows), "record")
    return 0


def _more_notice(shown: int, what: str) -> None:
    print(f"aiaudit: note: more {what}s match than the {shown} shown (oldest first): raise --limit (at most "
          f"{MAX_LIMIT:,}), narrow the filters, or use `aiaudit export` for all of them", file=sys.stderr)


def _trust(args: argparse.Namespace, settings: Settings) -> Any:
    """What this verification trusts: the pinned trust file (--trust), else the keys folder's JWKS and
    checkpoint.pub (or --jwks / --checkpoint-key) with an optional --witness."""
    from aiaudit.pipeline.chain.note import NoteError, Verifier
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
        if args.witness or args.jwks or args.checkpoint_key or args.emitter_keys or args.operator_key:
            raise ConfigError("--trust holds the keys and witnesses: leave out --jwks, --checkpoint-key, --witness, "
                              "--emitter-keys, --operator-key")
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
        print("aiaudit: warning: emitter signatures not checked: no emitter key set at "
              f"{emitter_set} (--emitter-keys FILE)", file=sys.stderr)
    keys: tuple[bytes, ...] = ()
    pub = Path(args.checkpoint_key) if args.checkpoint_key else checkpoint_key_file(
        settings.signing.keys_dir, settings.signing.checkpoint_key_file)
    try:
        keys = (read_checkpoint_public_key(pub),)
    except SigningKeyError as exc:
        print(f"aiaudit: warning: checkpoints not checked: {exc}", file=sys.stderr)
    operator_keys: tuple[bytes, ...] = ()
    if args.export:
        pub = Path(args.operator_key) if args.operator_key else operator_key_file(
            settings.signing.keys_dir, settings.signing.operator_key_file).with_name(OPERATOR_PUB)
        try:
            operator_keys = (read_operator_public_key(pub),)
        except SigningKeyError as exc:
            print(f"aiaudit: warning: the export's seal cannot be checked: {exc}", file=sys.stderr)
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


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    trust = _trust(args, settings)
    with _checker(args.workers, trust.keyring) as checker:
        return _verify(args, settings, trust, checker)


def _verify(args: argparse.Namespace, settings: Settings, trust: Any, checker: Any) -> int:
    from aiaudit.pipeline.verify import monitor
    from aiaudit.pipeline.verify.run import verify_export

    state_file = Path(args.state) if args.state else None
    pins = monitor.read_state(state_file) if state_file else {}

    if args.export:
        from aiaudit.pipeline.query.export_read import read_export_file

        if trust.witnesses and any(url for _, url in trust.witnesses) and not args.trust:
            raise ConfigError("--witness asks a live witness about the store; an export carries its cosignatures")
        file = read_export_file(Path(args.export), lenient=True)
        tail = _tail_rule(args, trust, settings, file.header.exported_at if file.header else None)
        report = verify_export(file, trust.keyring,
                               checkpoint_keys=trust.checkpoint_keys, witnesses=[v for v, _ in trust.witnesses],
                               min_cosignatures=trust.min_cosignatures, checker=checker, tail=tail,
                               windows=trust.windows, allow_unanchored=args.allow_unanchored,
                               operator_keys=trust.operator_keys, pins=pins)
        whole = file.selection == "whole"
    else:
        from aiaudit.pipeline import store
        from aiaudit.pipeline.verify.sources import verify_store

        client = store.connect(settings, must_exist=True)
        whole = args.since is None and args.until is None
        progress = None if args.json else (lambda line: print(f"  verified {line}", file=sys.stderr))
        window = None
        if not whole:
            from aiaudit.pipeline.contract import format_ts

            window = (format_ts(args.since) if args.since else "", format_ts(args.until) if args.until else "\uffff")
        report = verify_store(client, settings, trust.keyring, _filters(args), checkpoint_keys=trust.checkpoint_keys,
                              whole=whole, reconcile=args.origin is None, window=window, progress=progress,
                              live_witnesses=[(url, v) for v, url in trust.witnesses if url],
                              pinned_witnesses=[v for v, _ in trust.witnesses],
                              min_cosignatures=trust.min_cosignatures, checker=checker,
                              tail=(tail := _tail_rule(args, trust, settings)), windows=trust.windows, pins=pins)
        whole = whole and args.origin is None and not _filters(args).selects_records
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


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.keys import load_operator_key, operator_key_file
    from aiaudit.pipeline.query.export import export_records

    client = store.connect(settings, must_exist=True)  # a mistyped store is named first
    operator = load_operator_key(operator_key_file(settings.signing.keys_dir, settings.signing.operator_key_file))
    filters = _filters(args, limit=1)
    now = datetime.now(timezone.utc)
    progress = (lambda line: print(f"  exported {line}", file=sys.stderr))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            done = export_records(client, settings, filters, fh, now=now, operator=operator, progress=progress)
    else:
        done = export_records(client, settings, filters, sys.stdout, now=now, operator=operator,
                              progress=progress)
    print(f"exported {done.records} record(s) ({done.selection}), {done.checkpoints} signed checkpoint(s), "
          f"{done.proofs} inclusion proof(s)", file=sys.stderr)
    if done.unproven:
        print(f"aiaudit: warning: {done.unproven} record(s) are newer than their chain's newest signed checkpoint: "
              "no inclusion proof yet (export again after the chain worker signs)", file=sys.stderr)
    return 0


def cmd_proof(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query import proofs

    client = store.connect(settings, must_exist=True)
    if args.kind == "inclusion":
        if args.seq is None:
            raise ConfigError("`aiaudit proof inclusion` needs --seq (the record's seq in its chain)")
        out = proofs.inclusion(client, settings, args.origin, args.seq, args.size)
    else:
        if args.old_size is None:
            raise ConfigError("`aiaudit proof consistency` needs --from (the older size)")
        out = proofs.consistency(client, settings, args.origin, args.old_size, args.new_size)
    print(json.dumps(out, indent=2))
    return 0


def cmd_witness(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "keygen":
        from aiaudit.pipeline.chain.note import SIG_COSIGNATURE_V1, NoteSigner
        from aiaudit.pipeline.keys import ensure_checkpoint_key, load_checkpoint_key

        if not args.name or not args.key_file:
            raise ConfigError("`aiaudit witness keygen` needs --name (e.g. witness.example/w1) and --key-file")
        path = Path(args.key_file)
        if not ensure_checkpoint_key(path):
            raise ConfigError(f"{path} exists; a witness keeps its key (choose another --key-file)")
        vkey = NoteSigner.local(args.name, SIG_COSIGNATURE_V1, load_checkpoint_key(path)).verifier.vkey()
        print(f"witness key {path} (0600); its verifier key, to pin in the log's and the auditors' settings:\n{vkey}")
        return 0
    if args.action == "serve":
        import uvicorn

        from aiaudit.pipeline.witness.server import build_app, load_config

        if not args.config:
            raise ConfigError("`aiaudit witness serve` needs --config (name, key_file, state_file, logs)")
        _logging(args.verbose)
        app = build_app(load_config(Path(args.config)))
        print(f"witness {app.state.witness.name} on http://{args.host}:{args.port}/add-checkpoint", file=sys.stderr)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
        return 0
    from aiaudit.pipeline import store
    from aiaudit.pipeline.chain.note import NoteError, Verifier
    from aiaudit.pipeline.ops.supervisor import stop_on_signals
    from aiaudit.pipeline.witness.submit import submit_once

    if not args.url or not args.witness_key:
        raise ConfigError("`aiaudit witness submit` needs --url and --witness-key (the witness's vkey)")
    try:
        witness = Verifier.from_vkey(args.witness_key)
    except NoteError as exc:
        raise ConfigError(f"--witness-key: {exc}") from exc
    client = store.connect(settings, must_exist=True)
    stop = stop_on_signals()
    while True:
        for o in submit_once(client, settings, args.url, witness):
            print(f"{o.origin} size {o.size}: {o.status}")
        if not args.every or stop.wait(args.every):
            return 0


def cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    """`aiaudit sql "SELECT …"`: one read-only statement, through the running sink's store API on
    embedded chDB, or on the store itself (a server or a chDB no sink holds) with the same checks:
    read-only in the engine, no table functions or settings of its own, capped."""
    from aiaudit.pipeline import store
    from aiaudit.pipeline.store.api import ReadLimits, Refused, RemoteClient, read_statement

    s = settings.sink
    limits = ReadLimits(s.api_max_rows, s.api_max_bytes, s.api_max_seconds)
    try:
        checked = read_statement(args.statement, limits)
    except Refused as exc:
        raise ConfigError(f"not served: {exc}") from exc
    client = store.connect(settings, must_exist=True)
    statement = args.statement if isinstance(client, RemoteClient) else checked  # the sink checks it itself
    try:
        names, rows = store.query_rows(client, statement, {})
    except StoreError as exc:
        if "TOO_MANY_ROWS_OR_BYTES" in str(exc) or "TIMEOUT_EXCEEDED" in str(exc):
            raise StoreError(f"the answer is over the caps ({limits.max_rows:,} rows, {limits.max_bytes:,} bytes, "
                             f"{limits.max_seconds} s): narrow the query, or use `aiaudit export`") from None
        raise
    _print_rows([dict(zip(names, row)) for row in rows], args.format)
    print(f"{len(rows)} row(s)", file=sys.stderr)
    return 0


def cmd_trust(args: argparse.Namespace, settings: Settings) -> int:
    """`trust init`: a trust file from the public keys and witnesses in force now, for an auditor to
    pin (check it against what the operator showed you out of band)."""
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
    doc = trust_document(read_jwks(keys_dir), [read_checkpoint_public_key(checkpoint_key_file(keys_dir, None if args.dir
                                                                                               else sg.checkpoint_key_file))],
                         operator_keys=operator, emitter_jwks=read_key_set(emitters, missing_ok=True),
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
        print(f"aiaudit: warning: no operator key at {op_pub}: exports cannot be checked with this file "
              "(`aiaudit keys operator new`, then init again)", file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.keys import generate_key, read_jwks

    keys_dir = Path(args.dir) if args.dir else settings.signing.keys_dir
    if args.action == "emitter":
        return _emitter_keys(args, settings, keys_dir)
    if args.action == "operator":
        return _operator_key(args, settings, keys_dir)
    if args.action == "generate":
        path, kid = generate_key(keys_dir)
        print(f"new Ed25519 key {kid}\n  private key: {path} (mode 0600)\n  JWKS: {keys_dir / 'jwks.json'}")
    else:
        print(json.dumps(read_jwks(keys_dir), indent=2))
    return 0


def _operator_key(args: argparse.Namespace, settings: Settings, keys_dir: Path) -> int:
    """`keys operator new | show`: the key that seals exports, in a folder of its own."""
    from aiaudit.pipeline.keys import OPERATOR_PUB, ensure_operator_key, operator_key_file, read_operator_public_key

    path = operator_key_file(keys_dir, None if args.dir else settings.signing.operator_key_file)
    verb = args.rest[0] if args.rest else "show"
    if verb == "new" and len(args.rest) == 1:
        if not ensure_operator_key(path):
            raise ConfigError(f"an operator key exists at {path}: it is not replaced (verifiers pin its public key)")
        print(f"new operator key\n  private key: {path} (mode 0600): for whoever exports evidence\n  public key "
              f"(pin it: verify --operator-key, the trust file's operator_keys): {path.with_name(OPERATOR_PUB)}")
    elif verb == "show" and len(args.rest) <= 1:
        raw = read_operator_public_key(path.with_name(OPERATOR_PUB))
        print(base64.b64encode(raw).decode("ascii"))
    else:
        raise ConfigError("usage: aiaudit keys operator new | show")
    return 0


def _emitter_keys(args: argparse.Namespace, settings: Settings, keys_dir: Path) -> int:
    """`keys emitter new NAME | add NAME JWK_FILE | retire KID | list`: the emitter key set."""
    from aiaudit.pipeline.contract import emitter_keys as ek
    from aiaudit.pipeline.contract.signature import utc_now_text

    words = args.rest
    set_file = ek.key_set_file(settings) if not args.dir else keys_dir / ek.EMITTERS_DIR / ek.KEY_SET_FILE
    verb = words[0] if words else "list"
    if verb == "new" and len(words) == 2:
        folder = keys_dir / ek.EMITTERS_DIR
        path, kid, jwk = ek.new_emitter_key(folder, words[1], None if args.no_register else set_file)
        print(f"new emitter key {kid} for {words[1]!r}\n  private key: {path} (mode 0600): give it to the emitter "
              f"as AIAUDIT_EMITTER__KEY_FILE\n  " + (f"public key (register it with `aiaudit keys emitter add "
              f"{words[1]} FILE` where the chain worker runs):\n{json.dumps(jwk)}" if args.no_register
              else f"registered in {set_file}"))
    elif verb == "add" and len(words) == 3:
        try:
            jwk = json.loads(Path(words[2]).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{words[2]}: not a readable JSON public key (JWK): {exc}") from None
        if not isinstance(jwk, dict):
            raise ConfigError(f"{words[2]}: a JWK is a JSON object")
        kid = ek.register_emitter_key(set_file, words[1], jwk)
        print(f"emitter key {kid} registered for {words[1]!r} in {set_file}")
    elif verb == "retire" and len(words) == 2:
        name = ek.retire_emitter_key(set_file, words[1], args.at or utc_now_text())
        print(f"emitter key {words[1]} ({name}) retired from {args.at or 'now'}: events it signs from then on are "
              "refused; records it signed before still verify")
    elif verb == "list" and len(words) <= 1:
        doc = ek.read_key_set(set_file, missing_ok=True)
        if not doc["keys"]:
            print(f"no emitter keys in {set_file}: `aiaudit keys emitter new NAME` makes one")
        for jwk in doc["keys"]:
            window = f"  until {jwk['not_after']}" if "not_after" in jwk else ""
            print(f"{jwk['emitter']:<24} {jwk.get('kid', '?')}{window}")
    else:
        raise ConfigError("usage: aiaudit keys emitter new NAME [--no-register] | add NAME JWK_FILE | "
                          "retire KID [--at TIME] | list")
    return 0


def cmd_detect(args: argparse.Namespace, settings: Settings) -> int:
    models_dir = Path(args.models_dir) if args.models_dir else settings.score.models_dir
    if args.action == "evaluate":
        from aiaudit.detectors.evaluate import evaluate, table

        reports = evaluate(seed=args.seed, budget=args.budget)
        print("\n\n".join(table(r) for r in reports))
        held_out = reports[-1]
        if not all(held_out.meets_targets().values()):
            print(f"\nthe held-out family misses a target: {held_out.meets_targets()}")
            return 1
    elif args.action == "train":
        from aiaudit.pipeline.score.models import events_from_export, events_from_store, train_from

        events = events_from_export(Path(args.export)) if args.export else events_from_store(settings, _filters(args))
        version = args.version or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        with _model_errors():
            manifest = train_from(events, version=version, seed=args.seed, models_dir=models_dir)
        print(f"trained {manifest['version']} on {manifest['training']['rows']} events "
              f"({manifest['training']['window'][0]} .. {manifest['training']['window'][1]}); sha256 {manifest['sha256']}")
    elif args.action == "history":
        from aiaudit.pipeline import store
        from aiaudit.pipeline.keys import KeyRing, read_jwks
        from aiaudit.pipeline.score.models import promotion_history

        keyring = KeyRing.from_jwks(read_jwks(settings.signing.keys_dir))
        rows = promotion_history(store.connect(settings, must_exist=True), settings, keyring)
        if not rows and args.format == "table":
            print("(no promotion recorded yet: a scoring worker records each one as it first scores with it)")
            return 0
        _print_rows([{**r, "sha256": r["sha256"][:16], "scorers": ", ".join(r["scorers"])} for r in rows], args.format)
    elif args.action == "list":
        from aiaudit.pipeline.score.models import trained_models

        _print_rows(trained_models(models_dir), args.format)
    else:
        from aiaudit.pipeline.score.models import promote, trained_models

        if not args.version:
            models = trained_models(models_dir)
            newest = f"; the newest trained is {models[0]['version']} (trained {models[0]['trained_at']})" if models else \
                "; none is trained yet: run `aiaudit detect train`"
            raise ConfigError(f"`aiaudit detect promote` needs --version{newest} (`aiaudit detect list` shows all)")
        from aiaudit.pipeline.keys import active_key_file, load_signer

        signer = load_signer(active_key_file(settings.signing.keys_dir, settings.signing.key_file))
        by = args.by or os.environ.get("USER") or "operator"
        with _model_errors():
            manifest = promote(models_dir, args.version, signer, by=by)
        print(f"{manifest['version']} is live (sha256 {manifest['sha256']}), promoted by {by}, signed by key {signer.kid}")
    return 0


def _redeliver(args: argparse.Namespace, settings: Settings) -> int:
    """Dead-lettered deliveries -> the delivery agent's retries topic, one more attempt each."""
    import time

    import orjson
    from confluent_kafka import Producer

    from aiaudit.pipeline.deliver.redrive import plan_redrives
    from aiaudit.pipeline.kafka import config as kafka_config
    from aiaudit.pipeline.kafka.io import read_partitions

    k = settings.kafka
    # The dead-letter topic has one partition (infra/topics.py): its letters in the order written.
    dead = (m.value() for m in read_partitions(settings, k.delivery_dlq_topic, [0], timeout_s=120))
    if not args.by:
        raise ConfigError("`aiaudit alerts redeliver` needs --by (who re-drives: recorded with each delivery)")
    plan = plan_redrives(dead, k.partitions, now=time.time(), by=args.by, destination=args.destination,
                         finding_uid=args.uid)
    for reason, n in sorted(plan.skipped.items()):
        print(f"aiaudit: {n} dead letter(s) not re-driven: {reason}", file=sys.stderr)
    _print_rows([{"delivery": r.delivery_uid, "destination": r.job["destination"], "attempt": r.job["attempt"],
                  "finding": r.job["finding"]["finding_info"]["uid"]} for r in plan.redrives], args.format)
    if args.dry_run or not plan.redrives:
        print(f"{len(plan.redrives)} deliver{'y' if len(plan.redrives) == 1 else 'ies'} to re-drive"
              f"{' (dry run: nothing written)' if args.dry_run else ''}", file=sys.stderr)
        return 0
    producer = Producer(kafka_config.producer(settings))
    for r in plan.redrives:
        producer.produce(k.delivery_retries_topic, key=r.delivery_uid.encode(), value=orjson.dumps(r.job),
                         partition=r.partition)
    if producer.flush(30):
        raise InfraError(f"re-drives not all written to {k.delivery_retries_topic} within 30 s (broker down?); "
                         "running the command again is harmless")
    print(f"{len(plan.redrives)} re-drive(s) written to {k.delivery_retries_topic}: the delivery agent makes one more "
          "attempt each (`aiaudit alerts history UID` shows the outcome)", file=sys.stderr)
    return 0


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query.alerts import list_alerts, set_status, status_history

    if args.action in ("ack", "resolve", "reopen") and not (args.uid and args.by):
        raise ConfigError(f"`aiaudit alerts {args.action}` needs the alert uid and --by")
    if args.action == "history" and not args.uid:
        raise ConfigError("`aiaudit alerts history` needs the alert uid")
    if args.action == "redeliver":
        return _redeliver(args, settings)
    if args.action in ("ack", "resolve", "reopen"):
        status = {"ack": "acknowledged", "resolve": "resolved", "reopen": "open"}[args.action]
        checker = None
        try:
            checker = store.connect(settings, must_exist=True)
        except StoreError as exc:
            if "one process at a time" not in str(exc):
                raise
            print("aiaudit: note: the store is held by the running sink; the change is sent without checking the "
                  "alert exists, and shows once the sink has stored it", file=sys.stderr)
        try:
            set_status(settings, args.uid, status, by=args.by, note=args.note or "", client=checker)
        finally:
            if checker is not None:
                checker.close()
        print(f"{args.uid}: {status} by {args.by} (sent; the sink stores it)")
        return 0
    client = store.connect(settings, must_exist=True)
    if args.action == "list" and args.group_by:
        groups = list_alerts(client, settings, actor=args.actor, severity=args.severity, since=args.since,
                             until=args.until, status=args.status, detector=args.detector,
                             limit=min(args.limit + 1, MAX_LIMIT), group_by=tuple(args.group_by))
        _print_rows(groups[:args.limit], args.format)
        print(f"{len(groups[:args.limit])} group(s) of {sum(g['alerts'] for g in groups[:args.limit])} alert(s)",
              file=sys.stderr)
        if len(groups) > args.limit:
            print(f"aiaudit: note: more groups than the {args.limit} shown (largest first): raise --limit",
                  file=sys.stderr)
    elif args.action == "list":
        rows = list_alerts(client, settings, actor=args.actor, severity=args.severity, since=args.since,
                           until=args.until, status=args.status, detector=args.detector,
                           limit=min(args.limit + 1, MAX_LIMIT))
        cut = len(rows) > args.limit
        rows = rows[:args.limit]
        listed = [{"detected_at": r["detected_at"], "severity": r["severity"], "actor": r["actor_id"],
                   "score": round(r["score"], 3), "status": r["status"], "by": r["status_by"],
                   "record": f"{r['origin']}#{r['seq']}", "model": r["model_version"], "detectors": r["detectors"],
                   "uid": r["finding_uid"], "why": str(r["explanation"]).split("driven by ", 1)[-1]} for r in rows]
        _print_rows(listed, args.format)
        print(f"{len(rows)} alert(s)", file=sys.stderr)
        if cut:
            print(f"aiaudit: note: more alerts match than the {len(rows)} shown (newest first): raise --limit "
                  "or narrow the filters", file=sys.stderr)
    elif args.action == "history":
        _print_rows(status_history(client, settings, args.uid), args.format)
    return 0


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "keygen":
        from aiaudit.pipeline.gateway.identity import new_api_key

        if not args.id or not args.role:
            raise ConfigError("keygen needs --id and --role")
        key, digest = new_api_key()
        entry = {"sha256": digest, "id": args.id, "type": args.type, "role": args.role}
        if args.on_behalf_of:
            entry["on_behalf_of"] = args.on_behalf_of
        print(f"API key (shown once; give it to {args.id}, keep it nowhere else):\n  {key}", file=sys.stderr)
        print("Add this entry under `api_keys:` in the gateway config:", file=sys.stderr)
        print("  - " + json.dumps(entry))
        return 0
    if args.action == "check-policy":
        from aiaudit.pipeline.gateway.policy import parse_policy

        path = Path(args.file or settings.gateway.policy_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from exc
        policy = parse_policy(text, source=str(path))
        print(f"{path}: valid; policy {policy.policy_id} version {policy.version}")
        return 0
    if args.action == "policies":
        from aiaudit.pipeline import store
        from aiaudit.pipeline.query.api import policies_in_force

        rows = policies_in_force(store.connect(settings, must_exist=True), settings)
        _print_rows([{**r, "published": "yes" if r["first_loaded"] is not None else "NO: no bundle to show"}
                     for r in rows], "table")
        return 0
    if args.action == "policy":
        from aiaudit.pipeline.query.api import policy_bundle

        if not args.version:
            raise ConfigError("`aiaudit gateway policy` needs --version (a record's policy_version)")
        bundle = policy_bundle(settings, args.version)
        if bundle is None:
            print(f"aiaudit: no policy bundle {args.version} in ClickHouse", file=sys.stderr)
            return 1
        from aiaudit.pipeline.gateway.policy import bundle_problems

        problems = bundle_problems(args.version, str(bundle["canonical_json"]), str(bundle["source_yaml"]))
        if problems:
            print(f"aiaudit: the stored bundle is NOT policy {args.version}: " + "; ".join(problems), file=sys.stderr)
            return 1
        print(bundle["source_yaml"] if not args.canonical else bundle["canonical_json"])
        print(f"aiaudit: checked: the bundle hashes to its version {args.version}", file=sys.stderr)
        return 0
    import uvicorn

    from aiaudit.pipeline.gateway.app import build_app

    _logging(args.verbose)
    if args.host:
        settings.gateway.host = args.host
    if args.port:
        settings.gateway.port = args.port
    app = build_app(settings)
    gw, g = app.state.gateway, settings.gateway
    policy = gw.policies.current
    print(f"aiaudit gateway {gw.gateway_id} on http://{g.host}:{g.port}/v1 (and /r/<route>/v1)\n"
          f"  policy {policy.policy_id} version {policy.version} (published to {settings.kafka.policies_topic})\n"
          f"  routes: {', '.join(sorted(policy.bundle.routes))}; vendors: {', '.join(sorted(gw.vendors))}\n"
          f"  evidence to {settings.kafka.requests_topic} at {settings.kafka.bootstrap_servers}", file=sys.stderr)
    uvicorn.run(app, host=settings.gateway.host, port=settings.gateway.port, log_level="warning",
                loop="uvloop", http="httptools", access_log=False)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.ops.demo import run_demo

    return run_demo(settings, events=args.events, keep_running=args.keep_running)


# --- parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aiaudit", description="Signed, hash-chained evidence of every AI request.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("infra", help="start, stop or show the local Kafka broker; create topics",
                       description="Manage the local single-node Apache Kafka (KRaft) broker run from the Maven Central jars. "
                                   "`topics` creates the topics with their configs on any configured cluster.")
    s.add_argument("action", choices=["up", "down", "status", "topics"])
    s.add_argument("--replication-factor", type=int, default=1, help="for `topics` on a real cluster")
    s.set_defaults(func=cmd_infra)

    s = sub.add_parser("worker", help="run the chain worker, the sink worker, or both",
                       description="chain: requests -> signed hash chain; sink: chain, dead letters, scores and alerts -> "
                                   "ClickHouse; score: anomaly scoring with the live model (exactly once, a transaction per batch); deliver: "
                                   "findings to webhooks, Splunk HEC, syslog and chat (Faust; AIAUDIT_DELIVER__DESTINATIONS_FILE); "
                                   "all: chain and sink as child processes.")
    s.add_argument("role", nargs="?", choices=["chain", "sink", "score", "deliver", "all"], default="all")
    s.add_argument("--instance-id", help="static group membership id (a restart with the same id takes over at once)")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=cmd_worker)

    s = sub.add_parser("emit", help="send events from a JSONL file or synthetic ones",
                       description="Emit AI-request events through the SDK (validated, numbered, Avro-encoded).")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", help="JSONL file, one event per line (occurred_at as RFC 3339)")
    src.add_argument("--synthetic", type=int, metavar="N", help="generate N realistic events")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--emitter-id", help="names one numbering (emitter_seq from 0): a new run needs a new id, "
                   "or verify reports emitter_seq_reused; it must start with the name of the emitter key "
                   "(AIAUDIT_EMITTER__KEY_FILE) followed by '-' or '/' (default: a fresh <name>-<uuid>)")
    s.set_defaults(func=cmd_emit)

    s = sub.add_parser("query", help="retrieve records by identity, time, vendor, policy version ...",
                       description="Retrieve evidence records from ClickHouse (each record once, oldest first).")
    _add_filters(s)
    s.add_argument("--limit", type=_limit, default=100, help="at most this many rows (default 100; a note says when "
                   "more match)")
    s.add_argument("--format", choices=["table", "json", "jsonl", "csv"], default="table",
                   help="json: one JSON array; jsonl: one JSON object per line")
    s.add_argument("--all-columns", action="store_true", help="every typed column, not just the usual ones")
    s.set_defaults(func=cmd_query)

    s = sub.add_parser("verify", help="verify chains: signatures, links, seqs, forks, columns, emitter gaps",
                       description="Verify every chain in ClickHouse (or one, or a time range), or an export file. "
                                   "Prints one line per failure and a summary; exits 1 on any failure.")
    _add_filters(s)
    s.add_argument("--export", metavar="FILE", help="verify an `aiaudit export` JSONL file instead of ClickHouse")
    s.add_argument("--jwks", metavar="FILE", help="JWKS with the public keys (default: the keys folder's jwks.json)")
    s.add_argument("--operator-key", metavar="FILE",
                   help="the operator public key (.pub, base64) an export's header must be sealed by (default: "
                        "operator/operator.pub beside the keys folder)")
    s.add_argument("--checkpoint-key", metavar="FILE",
                   help="the checkpoint public key (.pub, base64) that signed checkpoints must verify under "
                        "(default: the keys folder's checkpoint/checkpoint.pub)")
    s.add_argument("--emitter-keys", metavar="FILE", help="the emitter key set each event's emitter signature is "
                   "checked with (default: the keys folder's emitters/jwks.json, when there is one)")
    s.add_argument("--require-emitter-signatures", action="store_true", help="an event without an emitter "
                   "signature fails (unauthenticated_emitter); records chained before emitters signed do too")
    s.add_argument("--trust", metavar="FILE", help="the pinned trust file: record keys (with validity windows), "
                   "checkpoint keys, witnesses and the cosignatures required (README); overrides the keys folder")
    s.add_argument("--witness", metavar="URL", help="also compare every chain with what this witness last cosigned")
    s.add_argument("--witness-key", metavar="VKEY", help="the witness's pinned verifier key (name+keyid+base64)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--max-age", type=_duration, metavar="DURATION",
                   help="the tail rule: fail (stale) a chain whose newest signed time (the log's timestamps and "
                        "heartbeats, witness cosignatures) is older than this at --as-of, e.g. 15m; default: the "
                        "trust file's max_checkpoint_age, else ten heartbeat intervals (5m with the defaults)")
    s.add_argument("--as-of", type=_time, metavar="TIME",
                   help="the time the tail rule judges freshness at (default: an export's own export time, else "
                        "now); apart from --until, which only selects records")
    s.add_argument("--no-tail-rule", action="store_true",
                   help="switch the tail rule off (shown in the result): removed newest records with their "
                        "checkpoints then go unseen")
    s.add_argument("--state", metavar="FILE",
                   help="the auditor's monitor state: each chain must be consistent with the newest checkpoint a "
                        "previous run verified (inconsistent_with_state otherwise: a rewrite, however well "
                        "re-signed and cosigned); a passing run advances it. Created on first use")
    s.add_argument("--allow-unanchored", action="store_true",
                   help="an export without signed checkpoints (written before checkpoints existed) passes with a "
                        "warning instead of failing unanchored")
    s.add_argument("--workers", type=_positive, metavar="N",
                   help="processes checking signatures and hashes (default: one per core; 1: none besides this one)")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("export", help="write records with their signed checkpoints and inclusion proofs (JSONL)",
                       description="JSON Lines: a header, one record per line (the exact signed bytes, base64), the "
                                   "chains' signed checkpoints with witness cosignatures, and for a filtered export "
                                   "(a sample) an RFC 9162 inclusion proof per record. `aiaudit verify --export FILE` "
                                   "checks it without the database; the format is in the README.")
    _add_filters(s)
    s.add_argument("--out", help="file to write (default: standard output)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("proof", help="RFC 9162 inclusion or consistency proof for a chain, from stored hashes",
                       description="inclusion: a record (--origin, --seq) is in the chain at --size (default: the "
                                   "newest signed checkpoint); consistency: the chain at --from is a prefix of the chain "
                                   "at --to. Prints JSON with base64 hashes and the signed checkpoint; the proof is "
                                   "checked before it is printed.")
    s.add_argument("kind", choices=["inclusion", "consistency"])
    s.add_argument("--origin", required=True, help="the chain, e.g. acme/dev/ai.requests/p0/g1")
    s.add_argument("--seq", type=int, help="inclusion: the record's seq")
    s.add_argument("--size", type=int, help="inclusion: the tree size (default: newest signed checkpoint)")
    s.add_argument("--from", dest="old_size", type=int, help="consistency: the older size")
    s.add_argument("--to", dest="new_size", type=int, help="consistency: the newer size (default: newest signed)")
    s.set_defaults(func=cmd_proof)

    s = sub.add_parser("witness", help="run a C2SP witness; make its key; submit checkpoints to a witness",
                       description="serve: a C2SP tlog-witness (run by someone other than the operator) that cosigns "
                                   "a chain's checkpoint only if it is consistent with the last it cosigned; keygen: "
                                   "the witness's own key and its verifier key; submit: send each chain's newest signed "
                                   "checkpoint with a consistency proof to a witness and keep the cosignature.")
    s.add_argument("action", choices=["serve", "keygen", "submit"])
    s.add_argument("--config", help="serve: the witness config (YAML: name, key_file, state_file, logs)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8500)
    s.add_argument("--name", help="keygen: the witness's name, e.g. witness.example/w1")
    s.add_argument("--key-file", help="keygen: where to write the witness's private key")
    s.add_argument("--url", help="submit: the witness's URL prefix")
    s.add_argument("--witness-key", help="submit: the witness's verifier key (from its keygen)")
    s.add_argument("--every", type=float, metavar="S", help="submit: keep submitting every S seconds")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=cmd_witness)

    s = sub.add_parser("sql", help="run one read-only SQL statement on the store (ClickHouse SQL)",
                       description="One SELECT, WITH or EXISTS statement, read-only in the engine, capped "
                                   "(AIAUDIT_SINK__API_MAX_ROWS, _BYTES, _SECONDS): through the running sink on "
                                   "embedded chDB, or on the store itself. Tables: docs/sql.md.")
    s.add_argument("statement", help='e.g. "SELECT provider, count() FROM aiaudit.evidence GROUP BY provider"')
    s.add_argument("--format", choices=["table", "json", "jsonl", "csv"], default="table")
    s.set_defaults(func=cmd_sql)

    s = sub.add_parser("trust", help="write a trust file pinning the public keys and witnesses in force",
                       description="`trust init --out FILE`: record keys, the checkpoint key, the operator key, the "
                                   "emitter key set (emitter signatures then required) and any witness (one "
                                   "cosignature then required), for `aiaudit verify --trust FILE`.")
    s.add_argument("action", choices=["init"])
    s.add_argument("--out", required=True, help="the trust file to write")
    s.add_argument("--witness-key", action="append", metavar="VKEY", help="a witness's verifier key (repeatable)")
    s.add_argument("--witness-url", metavar="URL", help="where the witness answers (verify asks it live)")
    s.add_argument("--max-age", metavar="DURATION", help="the tail rule's maximum age to pin, e.g. 15m")
    s.add_argument("--dir", help="keys folder (default: AIAUDIT_SIGNING__KEYS_DIR or ~/.config/aiaudit/keys)")
    s.add_argument("--force", action="store_true", help="replace an existing file")
    s.set_defaults(func=cmd_trust)

    s = sub.add_parser("keys", help="generate a signing key, print the JWKS, manage emitter keys",
                       description="Ed25519 signing keys live outside the repo (default ~/.config/aiaudit/keys). "
                                   "`keys emitter new NAME` makes an emitter's key and registers it in the emitter "
                                   "key set (<keys>/emitters/jwks.json) the chain worker checks events with; "
                                   "`keys emitter add NAME JWK_FILE` registers a key made on another host "
                                   "(`new NAME --no-register` there); `keys emitter retire KID` ends a key "
                                   "(rotation: new key first, then retire the old); `keys emitter list`. "
                                   "`keys operator new` makes the operator key that seals exports (in "
                                   "<keys>/../operator/, apart from the workers' keys); `keys operator show` prints "
                                   "its public key for verifiers to pin.")
    s.add_argument("action", choices=["generate", "jwks", "emitter", "operator"])
    s.add_argument("rest", nargs="*", help="emitter: new NAME | add NAME JWK_FILE | retire KID | list; "
                                           "operator: new | show (the key that seals exports)")
    s.add_argument("--no-register", action="store_true", help="emitter new: make the key only, print its public JWK")
    s.add_argument("--at", help="emitter retire: from when (RFC 3339; default now)")
    s.add_argument("--dir", help="keys folder (default: AIAUDIT_SIGNING__KEYS_DIR or ~/.config/aiaudit/keys)")
    s.set_defaults(func=cmd_keys)

    s = sub.add_parser("detect", help="train, promote and evaluate anomaly models (IsolationForest)",
                       description="train: fit a model on chained events (an export file, or ClickHouse filtered by "
                                   "time); list: the trained models, newest first, and which is live; promote: make "
                                   "a version live after checking its hash; history: every promotion a scoring worker "
                                   "used (from the store: who, when, first scored, signature checked); evaluate: the shipped detection "
                                   "(IsolationForest + rules) and the model alone against a "
                                   "per-identity z-score baseline on two families of labelled traffic (tuning and "
                                   "held-out); exit 1 if the held-out family misses a target.")
    s.add_argument("action", choices=["train", "list", "promote", "history", "evaluate"])
    s.add_argument("--version", help="train: the new model's name (default: the time, e.g. 20261129T0712Z); "
                                      "promote: the model to make live (see `aiaudit detect list`)")
    s.add_argument("--format", choices=["table", "json", "jsonl", "csv"], default="table", help="list's and history's output")
    s.add_argument("--by", help="promote: who promotes (recorded and signed; default: $USER)")
    s.add_argument("--models-dir", help="default: AIAUDIT_SCORE__MODELS_DIR or .aiaudit/models")
    s.add_argument("--export", metavar="FILE", help="train from an `aiaudit export` file instead of ClickHouse")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--budget", type=float, default=0.01, help="evaluate: share of events alerted")
    _add_filters(s)
    s.set_defaults(func=cmd_detect)

    s = sub.add_parser("alerts", help="list anomaly alerts; acknowledge, resolve or reopen one; re-drive dead "
                                      "deliveries",
                       description="Alerts are OCSF Detection Findings from the scoring worker. Status changes are "
                                   "appended (who, when, note), never overwritten: `history` shows them all. "
                                   "`redeliver` gives dead-lettered deliveries one more attempt each (the newest "
                                   "dead letter of each; --destination, a finding uid, --dry-run).")
    s.add_argument("action", choices=["list", "ack", "resolve", "reopen", "history", "redeliver"])
    s.add_argument("uid", nargs="?", help="the finding uid (ack, resolve, reopen, history; redeliver: only this "
                                          "finding's dead letters)")
    s.add_argument("--destination", help="redeliver: only dead letters of this destination")
    s.add_argument("--dry-run", action="store_true", help="redeliver: list what would be re-driven, write nothing")
    s.add_argument("--by", help="who changes the status, or re-drives")
    s.add_argument("--note")
    s.add_argument("--actor")
    s.add_argument("--severity", choices=["medium", "high", "critical"])
    s.add_argument("--status", choices=["open", "acknowledged", "resolved"])
    s.add_argument("--detector", help="list: only findings this detector fired on (isolation-forest, or a rule: "
                                      "prompt_injection, request_burst, ...)")
    s.add_argument("--since", type=_time, help="RFC 3339, or a duration ago (7d, 2h)")
    s.add_argument("--until", type=_time, help="RFC 3339, or a duration ago")
    s.add_argument("--group-by", nargs="+", choices=["actor", "model", "detectors", "severity", "status"],
                   help="list: one row per group (alerts, open ones, highest severity, latest), largest first; "
                        "`--group-by actor model` is per identity and detector")
    s.add_argument("--limit", type=_limit, default=100, help="at most this many rows (default 100; a note says when "
                   "more match)")
    s.add_argument("--format", choices=["table", "json", "jsonl", "csv"], default="table",
                   help="json: one JSON array; jsonl: one JSON object per line")
    s.set_defaults(func=cmd_alerts)

    s = sub.add_parser("gateway", help="run the policy-enforcing LLM gateway; make API keys; check a policy",
                       description="serve: the OpenAI-compatible gateway (AIAUDIT_GATEWAY__CONFIG_FILE, "
                                   "AIAUDIT_GATEWAY__POLICY_FILE); keygen: a new caller API key and the hashed entry "
                                   "to store; check-policy: validate a policy file and print its version; policy: "
                                   "print the policy bundle a record's policy_version names (from ClickHouse).")
    s.add_argument("action", nargs="?", choices=["serve", "keygen", "check-policy", "policy", "policies"], default="serve",
                   help="policies: every policy version, when it first and last decided, and whether its bundle "
                        "was published")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--id", help="keygen: the principal (person, agent or service id)")
    s.add_argument("--role", help="keygen: the principal's role")
    s.add_argument("--type", choices=["workforce", "agent", "service"], default="workforce")
    s.add_argument("--on-behalf-of", help="keygen: for an agent, the person it acts for")
    s.add_argument("--file", help="check-policy: the file (default: AIAUDIT_GATEWAY__POLICY_FILE)")
    s.add_argument("--version", help="policy: the policy_version to print")
    s.add_argument("--canonical", action="store_true", help="policy: print the hashed canonical JSON, not the YAML")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=cmd_gateway)

    s = sub.add_parser("demo", help="end-to-end demo on the embedded defaults (local Kafka, chDB)",
                       description="Start Kafka and the workers, emit events (some malformed), wait until they are "
                                   "queryable, verify every chain, run sample queries, stop everything.")
    s.add_argument("--events", type=int, default=5000)
    s.add_argument("--keep-running", action="store_true", help="leave the broker running afterwards")
    s.set_defaults(func=cmd_demo)
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


# Top-level modules of the `server` extra (pyproject.toml): a command that needs one on the light install
# says which extra to install instead of a traceback.
SERVER_MODULES = frozenset({"nacl", "clickhouse_connect", "chdb", "sklearn", "faust", "aiokafka", "numpy", "starlette",
                            "uvicorn", "aiohttp", "yaml", "jwt", "mode"})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
