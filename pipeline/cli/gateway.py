"""`aiaudit gateway serve|keygen|check-policy|policy|policies`: the policy-enforcing LLM gateway."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiaudit.pipeline.cli.args import add_verbose, start_logging
from aiaudit.pipeline.cli.output import print_rows
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings

if TYPE_CHECKING:
    from aiaudit.pipeline.gateway.policy import Policy

MAX_WORKERS = 64


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("gateway", help="run the policy-enforcing LLM gateway; make API keys; check a policy",
                       description="An OpenAI-compatible gateway that decides each request by policy and emits its "
                                   "evidence (docs/gateway.md).")
    actions = p.add_subparsers(dest="action", required=True,
                               metavar="{serve,keygen,check-policy,policy,policies}")
    s = actions.add_parser("serve", help="run the gateway (AIAUDIT_GATEWAY__CONFIG_FILE, "
                                         "AIAUDIT_GATEWAY__POLICY_FILE)")
    s.add_argument("--host", help="default: AIAUDIT_GATEWAY__HOST")
    s.add_argument("--port", type=int, help="default: AIAUDIT_GATEWAY__PORT")
    s.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics on this port, apart from the API (/metrics; off when not given)")
    s.add_argument("--metrics-host", default="127.0.0.1", metavar="ADDR",
                   help="the address the metrics listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--workers", type=int, default=1, metavar="N",
                   help=f"gateway processes sharing the port, 1-{MAX_WORKERS} (default 1). One process uses one "
                        "core at most; each has its own emitter id, content keeper and vendor connections, and "
                        "--metrics-port serves all of theirs")
    add_verbose(s)
    s.set_defaults(func=serve)
    k = actions.add_parser("keygen", help="a new caller API key and the hashed entry to store")
    k.add_argument("--id", required=True, help="the principal (person, agent or service id)")
    k.add_argument("--role", required=True, help="the principal's role")
    k.add_argument("--type", choices=["workforce", "agent", "service"], default="workforce")
    k.add_argument("--on-behalf-of", help="for an agent, the person it acts for")
    k.set_defaults(func=keygen)
    c = actions.add_parser("check-policy", help="validate a policy file and print its version")
    c.add_argument("--file", help="the file (default: AIAUDIT_GATEWAY__POLICY_FILE)")
    c.set_defaults(func=check_policy)
    o = actions.add_parser("policy", help="print the policy bundle a record's policy_version names (from the store)")
    o.add_argument("--version", required=True, help="the policy_version to print")
    o.add_argument("--canonical", action="store_true", help="print the hashed canonical JSON, not the YAML")
    o.set_defaults(func=policy)
    ps = actions.add_parser("policies", help="every policy version, when it first and last decided, and whether its "
                                             "bundle was published")
    ps.set_defaults(func=policies)


def keygen(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.gateway.identity import new_api_key

    key, digest = new_api_key()
    entry = {"sha256": digest, "id": args.id, "type": args.type, "role": args.role}
    if args.on_behalf_of:
        entry["on_behalf_of"] = args.on_behalf_of
    print(f"API key (shown once; give it to {args.id}, keep it nowhere else):\n  {key}", file=sys.stderr)
    print("Add this entry under `api_keys:` in the gateway config:", file=sys.stderr)
    print("  - " + json.dumps(entry))
    return 0


def check_policy(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.gateway.policy import parse_policy

    path = Path(args.file or settings.gateway.policy_file)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    parsed = parse_policy(text, source=str(path))
    print(f"{path}: valid; policy {parsed.policy_id} version {parsed.version}")
    return 0


def policies(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.query.api import policies_in_force

    rows = policies_in_force(store.open_reads(settings, "gateway"), settings)
    print_rows([{**r, "published": "yes" if r["first_loaded"] is not None else "NO: no bundle to show"}
                for r in rows], "table")
    return 0


def policy(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.gateway.policy import bundle_problems
    from aiaudit.pipeline.query.api import policy_bundle

    bundle = policy_bundle(settings, args.version)
    if bundle is None:
        print(f"aiaudit: no policy bundle {args.version} in ClickHouse", file=sys.stderr)
        return 1
    problems = bundle_problems(args.version, str(bundle["canonical_json"]), str(bundle["source_yaml"]))
    if problems:
        print(f"aiaudit: the stored bundle is NOT policy {args.version}: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(bundle["source_yaml"] if not args.canonical else bundle["canonical_json"])
    print(f"aiaudit: checked: the bundle hashes to its version {args.version}", file=sys.stderr)
    return 0


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from aiaudit.pipeline.gateway.app import build_app

    if not 1 <= args.workers <= MAX_WORKERS:
        raise ConfigError(f"--workers must be 1-{MAX_WORKERS} (got {args.workers})")
    start_logging(args.verbose)
    settings = settings.updated(gateway={k: v for k, v in (("host", args.host), ("port", args.port)) if v})
    if args.workers > 1:
        return _serve_processes(args, settings)
    g = settings.gateway
    app = build_app(settings)
    if args.metrics_port:
        from aiaudit.pipeline import metrics

        metrics.serve(args.metrics_port, args.metrics_host)
    gw = app.state.gateway
    _banner(gw.gateway_id, settings, gw.policies.current, sorted(gw.vendors), 1)
    uvicorn.run(app, host=g.host, port=g.port, log_level="warning", loop="uvloop", http="httptools", access_log=False)
    return 0


def _banner(gateway_id: str, settings: Settings, policy: Policy, vendors: list[str], workers: int) -> None:
    g = settings.gateway
    processes = f" ({workers} processes)" if workers > 1 else ""
    print(f"aiaudit gateway {gateway_id} on http://{g.host}:{g.port}/v1 (and /r/<route>/v1){processes}\n"
          f"  policy {policy.policy_id} version {policy.version} (published to {settings.kafka.policies_topic})\n"
          f"  routes: {', '.join(sorted(policy.bundle.routes))}; vendors: {', '.join(vendors)}\n"
          f"  evidence to {settings.kafka.requests_topic} at {settings.kafka.bootstrap_servers}", file=sys.stderr)


def _serve_processes(args: argparse.Namespace, settings: Settings) -> int:
    """`--workers N` (gateway/processes.py): the files checked here first, once; metrics in
    prometheus_client's multiprocess mode, each process writing its own to a private folder that
    this process serves and removes."""
    import shutil
    import socket
    import tempfile

    from aiaudit.pipeline.gateway.app import WORKER_VERBOSE, check_files
    from aiaudit.pipeline.gateway.processes import Supervisor

    config, policy = check_files(settings)
    g = settings.gateway
    # The processes read their settings from the environment: --host/--port as given here.
    os.environ.update({"AIAUDIT_GATEWAY__HOST": g.host, "AIAUDIT_GATEWAY__PORT": str(g.port)})
    if args.verbose:
        os.environ[WORKER_VERBOSE] = "1"
    folder = None
    try:
        if args.metrics_port:
            from aiaudit.pipeline import metrics

            folder = tempfile.mkdtemp(prefix="aiaudit-gateway-metrics-")  # 0700
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # read by prometheus_client as each process imports it
            metrics.serve_processes(args.metrics_port, args.metrics_host, folder)
        _banner(g.gateway_id or socket.gethostname(), settings, policy,
                sorted(config.upstreams), args.workers)
        try:
            return Supervisor(args.workers, g.host, g.port).run()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {g.host}:{g.port}: {exc.strerror}") from exc
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
