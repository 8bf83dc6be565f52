"""`aiaudit worker chain|sink|score|deliver|all`: run one step of the pipeline in this process."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import TYPE_CHECKING

from aiaudit.pipeline.cli.args import add_verbose, model_errors, start_logging
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings

if TYPE_CHECKING:
    from aiaudit.pipeline.chain.checkpoint import Notary

ROLES = {
    "chain": "requests -> signed hash chain, checkpoints and heartbeats (exactly once, a transaction per batch)",
    "evidence": "every other evidence kind (findings, incidents, status changes, dead letters, deliveries, model "
                "promotions, policies) -> its own signed chains, checkpoints and heartbeats (exactly once)",
    "sink": "chain, dead letters, scores, alerts, policies -> ClickHouse",
    "score": "anomaly scoring with the live model and the rules (exactly once, a transaction per batch)",
    "deliver": "signed findings to webhooks, Splunk HEC, syslog and chat (Faust; AIAUDIT_DELIVER__DESTINATIONS_FILE)",
    "all": "chain, evidence and sink as child processes, restarted if one stops",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="run a pipeline worker: chain, sink, score, deliver, or chain and sink",
                       description="; ".join(f"{k}: {v}" for k, v in ROLES.items()) + ".")
    roles = p.add_subparsers(dest="role", required=True, metavar="{" + ",".join(ROLES) + "}")
    for role, text in ROLES.items():
        r = roles.add_parser(role, help=text, description=text)
        if role in ("chain", "evidence", "score"):
            r.add_argument("--instance-id", help="static group membership id (a restart with the same id takes "
                                                 "over at once)")
        if role in ("chain", "evidence", "sink", "score", "deliver"):
            r.add_argument("--metrics-port", type=int, metavar="PORT",
                           help="serve Prometheus metrics on this port (/metrics; off when not given)")
            r.add_argument("--metrics-host", default="127.0.0.1", metavar="ADDR",
                           help="the address the metrics listen on (default 127.0.0.1: this machine only)")
        add_verbose(r)
        r.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.ops.supervisor import start_worker, stop_on_signals, supervise

    start_logging(args.verbose)
    if getattr(args, "metrics_port", None):
        from aiaudit.pipeline import metrics

        metrics.serve(args.metrics_port, args.metrics_host)
    if args.role == "score":
        return _score(args, settings)
    if args.role == "deliver":
        return _deliver(args, settings)
    if args.role == "all":
        procs = [start_worker(role) for role in ("chain", "evidence", "sink")]
        return supervise(procs, stop_on_signals())
    stop = stop_on_signals()
    if args.role == "evidence":
        return _evidence(args, settings, stop)
    if args.role == "chain":
        from aiaudit.pipeline.chain.worker import ChainWorker
        from aiaudit.pipeline.keys import active_key_file, load_signer

        sg = settings.signing
        signer = load_signer(active_key_file(sg.keys_dir, sg.key_file))
        notary = chain_notary(settings)
        logging.getLogger("aiaudit").info(
            "chain worker signing records with kid %s; checkpoints every %.1fs, signed %s", signer.kid,
            settings.chain.checkpoint_interval_s, f"by the signer at {settings.chain.signer_url}" if notary.remote
            else "in this process (for key custody run `aiaudit signer serve` and set AIAUDIT_CHAIN__SIGNER_URL)")
        ChainWorker(settings, signer, notary=notary, instance_id=args.instance_id).run(stop)
    else:
        from aiaudit.pipeline.sink.worker import SinkWorker

        SinkWorker(settings).run(stop, serve_reads=settings.clickhouse_dsn().startswith("chdb://"))
    return 0


def _evidence(args: argparse.Namespace, settings: Settings, stop: threading.Event) -> int:
    """One chain worker per evidence kind, each in a thread of this process; one that fails stops
    them all (and the process exits non-zero, for its supervisor to restart it)."""
    from aiaudit.pipeline.keys import active_key_file, load_signer
    from aiaudit.pipeline.ops.evidence import EvidenceChains

    sg = settings.signing
    chains = EvidenceChains(settings, load_signer(active_key_file(sg.keys_dir, sg.key_file)), chain_notary(settings),
                            instance_id=args.instance_id).start()
    while not stop.is_set() and not chains.stop.is_set():
        stop.wait(0.5)
    chains.close()
    return 1 if chains.failed else 0


def _score(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.keys import KeyRing, load_or_create_scorer_key, read_jwks, scorer_key_file
    from aiaudit.pipeline.ops.supervisor import stop_on_signals
    from aiaudit.pipeline.score.models import LiveModel, LiveRules
    from aiaudit.pipeline.score.worker import ScoreWorker

    log = logging.getLogger("aiaudit.score")
    with model_errors():
        model = LiveModel(settings.score.models_dir, KeyRing.from_jwks(read_jwks(settings.signing.keys_dir)))
        rules = LiveRules(settings)
    if rules.config.vendor_max_level is None:
        log.warning("no AIAUDIT_SCORE__POLICY_FILE: the rules that need each vendor's max_level (sensitive data to an "
                    "unapproved vendor, responses above the route's level) are off; secrets sent anywhere are flagged")
    else:
        log.info("rules with the vendors of %s: %s", settings.score.policy_file, rules.config.vendor_max_level)
    key_file = scorer_key_file(settings.signing.keys_dir, settings.score.finding_key_file)
    finding_key, created = load_or_create_scorer_key(key_file)
    if created:
        log.warning("created the scorer key %s: the delivery agent delivers only findings it signs (pin %s)", key_file,
                    key_file.with_name("scorer.pub"))
    ScoreWorker(settings, model, rules=rules, instance_id=args.instance_id,
                finding_key=finding_key).run(stop_on_signals())
    return 0


def _deliver(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.deliver.agent import run
    from aiaudit.pipeline.deliver.config import load_targets
    from aiaudit.pipeline.keys import SCORER_PUB, read_scorer_public_key, scorer_key_file

    if settings.deliver.destinations_file is None:
        raise ConfigError("the delivery agent needs a destinations file: set AIAUDIT_DELIVER__DESTINATIONS_FILE "
                          "(docs/delivery.md shows one)")
    targets = load_targets(settings.deliver.destinations_file)
    pubs = settings.deliver.finding_keys or [
        scorer_key_file(settings.signing.keys_dir, settings.score.finding_key_file).with_name(SCORER_PUB)]
    finding_keys = [read_scorer_public_key(p) for p in pubs]  # a missing one stops the agent, named
    logging.getLogger("aiaudit.deliver").info("destinations: %s", ", ".join(map(repr, targets)))
    run(settings, targets, finding_keys, verbose=args.verbose)
    return 0


def chain_notary(settings: Settings) -> Notary:
    """Who signs the chain's checkpoints: the signer process when chain.signer_url is set, else the
    checkpoint key read here."""
    from aiaudit.pipeline.chain.checkpoint import LocalNotary
    from aiaudit.pipeline.keys import checkpoint_key_file, load_checkpoint_key, read_checkpoint_public_key

    sg = settings.signing
    path = checkpoint_key_file(sg.keys_dir, sg.checkpoint_key_file)
    if settings.chain.signer_url:
        from aiaudit.pipeline.signer.client import RemoteNotary
        from aiaudit.pipeline.signer.server import token_from_env

        return RemoteNotary(settings.chain.signer_url, token_from_env(), read_checkpoint_public_key(path))
    return LocalNotary(load_checkpoint_key(path))
