"""`aiaudit detect train|list|promote|history|evaluate`: the anomaly models (IsolationForest)."""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone
from pathlib import Path

from aiaudit.pipeline.cli.args import add_filters, add_format, filters, model_errors
from aiaudit.pipeline.cli.output import print_rows
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings

MODELS_HELP = "default: AIAUDIT_SCORE__MODELS_DIR or .aiaudit/models"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("detect", help="train, promote and evaluate anomaly models (IsolationForest)",
                       description="Models are trained on chained events, made live by a signed promotion, and "
                                   "recorded by every scoring worker that uses one.")
    actions = p.add_subparsers(dest="action", required=True, metavar="{train,list,promote,history,rules-history,evaluate,check-rules}")
    t = actions.add_parser("train", help="fit a model on chained events (an export, or the store filtered by time)")
    t.add_argument("--version", help="the new model's name (default: the time, e.g. 20261129T0712Z)")
    t.add_argument("--export", metavar="FILE", help="train from an `aiaudit export` file instead of ClickHouse")
    t.add_argument("--seed", type=int, default=7)
    t.add_argument("--models-dir", help=MODELS_HELP)
    add_filters(t)
    t.set_defaults(func=train)
    ls = actions.add_parser("list", help="the trained models, newest first, and which is live")
    ls.add_argument("--models-dir", help=MODELS_HELP)
    add_format(ls)
    ls.set_defaults(func=list_models)
    pr = actions.add_parser("promote", help="make a version live after checking its hash (signed, recorded)")
    pr.add_argument("--version", help="the model to make live (see `aiaudit detect list`)")
    pr.add_argument("--by", help="who promotes (recorded and signed; default: $USER)")
    pr.add_argument("--models-dir", help=MODELS_HELP)
    pr.set_defaults(func=promote)
    h = actions.add_parser("history", help="every promotion a scoring worker used (who, when, first scored, "
                                           "signature checked)")
    add_format(h)
    h.set_defaults(func=history)
    rh = actions.add_parser("rules-history", help="every rule configuration a scoring worker used (version, "
                                                  "thresholds changed, rules off, first scored)")
    add_format(rh)
    rh.set_defaults(func=rules_history)
    e = actions.add_parser("evaluate", help="the shipped detection against a z-score baseline on labelled traffic",
                           description="The shipped detection (IsolationForest + rules) and the model alone against a "
                                       "per-identity z-score baseline on families of labelled traffic: tuning, held-out "
                                       "(both read while tuning) and evaluation (detectors/evalset.py, the one judged, "
                                       "with a fresh scorer's first week); exit 1 if the evaluation family misses a "
                                       "target.")
    e.add_argument("--seed", type=int, default=7)
    e.add_argument("--budget", type=float, default=0.01, help="share of events alerted")
    e.add_argument("--evaluation-seed", type=int, default=None, metavar="N",
                   help="draw the evaluation family with another seed of its generator (default: the recorded one)")
    e.add_argument("--family", action="append", choices=("tuning", "held-out", "evaluation"),
                   help="a family to report (repeatable; default: all three)")
    e.set_defaults(func=evaluate)
    c = actions.add_parser("check-rules", help="check a rules file and show the thresholds it puts in force",
                           description="Parse a rules file (YAML: format, settings, disabled) as the scoring worker would, "
                                       "with the policy file's vendors (AIAUDIT_SCORE__POLICY_FILE); print its version "
                                       "and every threshold, marking those that differ from the default; exit 2 naming what is wrong.")
    c.add_argument("file", help="the rules file (AIAUDIT_SCORE__RULES_FILE)")
    add_format(c)
    c.set_defaults(func=check_rules)


def _models_dir(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.models_dir) if args.models_dir else settings.score.models_dir


def check_rules(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses

    from aiaudit.detectors.rules import RULE_NAMES, RuleConfig
    from aiaudit.pipeline.score.models import policy_rule_config, read_rules_file

    config = read_rules_file(Path(args.file), policy_rule_config(settings))  # ConfigError: exit 2, named
    default = RuleConfig()
    rows = [{"threshold": f.name, "value": getattr(config, f.name),
             "changed": getattr(config, f.name) != getattr(default, f.name)}
            for f in dataclasses.fields(RuleConfig) if f.name not in ("vendor_max_level", "off", "version")]
    rows += [{"threshold": f"rule {name}", "value": "off" if name in config.off else "on",
              "changed": name in config.off} for name in RULE_NAMES]
    if args.format == "table":
        print(f"{args.file}: rules {config.version}; vendors from "
              f"{settings.score.policy_file or 'no policy file (the vendor rules are off)'}")
    print_rows(rows, args.format)
    return 0


def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.detectors.evaluate import evaluate, table

    reports = evaluate(seed=args.seed, budget=args.budget, evaluation_seed=args.evaluation_seed,
                       families=tuple(args.family or ("tuning", "held-out", "evaluation")))
    print("\n\n".join(table(r) for r in reports))
    missed = {r.family: [k for k, v in r.meets_targets().items() if not v] for r in reports if r.family == "evaluation"}
    if any(missed.values()):
        print(f"\nthe evaluation family misses a target: {', '.join(missed['evaluation'])}")
        return 1
    return 0


def train(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.score.models import events_from_export, events_from_store, train_from

    events = events_from_export(Path(args.export)) if args.export else events_from_store(settings, filters(args))
    version = args.version or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    with model_errors():
        manifest = train_from(events, version=version, seed=args.seed, models_dir=_models_dir(args, settings))
    print(f"trained {manifest['version']} on {manifest['training']['rows']} events "
          f"({manifest['training']['window'][0]} .. {manifest['training']['window'][1]}); sha256 {manifest['sha256']}")
    return 0


def history(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline import store
    from aiaudit.pipeline.keys import KeyRing, read_jwks
    from aiaudit.pipeline.score.models import promotion_history

    keyring = KeyRing.from_jwks(read_jwks(settings.signing.keys_dir))
    rows = promotion_history(store.open_reads(settings, "detect"), settings, keyring)
    if not rows and args.format == "table":
        print("(no promotion recorded yet: a scoring worker records each one as it first scores with it)")
        return 0
    print_rows([{**r, "sha256": r["sha256"][:16], "scorers": ", ".join(r["scorers"])} for r in rows], args.format)
    return 0


def rules_history(args: argparse.Namespace, settings: Settings) -> int:
    import orjson

    from aiaudit.detectors.rules import RuleConfig
    from aiaudit.pipeline import store
    from aiaudit.pipeline.store import rules_versions

    defaults = orjson.loads(rules_versions.config_json(RuleConfig()))
    names, rows = store.query_rows(store.open_reads(settings, "detect"),
                                   *rules_versions.select_history(store.database(settings)))
    out = []
    for r in rows:
        entry = dict(zip(names, r))
        config = orjson.loads(entry["config_json"])
        changed = {k: v for k, v in config.items() if k not in ("version", "off", "vendor_max_level") and defaults.get(k) != v}
        out.append({"version": entry["version"], "first_scored_at": entry["first_scored_at"],
                    "sha256": entry["sha256"][:16], "not_default": ", ".join(f"{k}={v}" for k, v in sorted(changed.items())),
                    "off": ", ".join(entry["off"]), "vendors": len(config.get("vendor_max_level") or {}),
                    "scorers": ", ".join(entry["scorers"])})
    if not out and args.format == "table":
        print("(no rule configuration recorded yet: a scoring worker records each one as it first scores with it)")
        return 0
    print_rows(out, args.format)
    return 0


def list_models(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.score.models import trained_models

    print_rows(trained_models(_models_dir(args, settings)), args.format)
    return 0


def promote(args: argparse.Namespace, settings: Settings) -> int:
    from aiaudit.pipeline.keys import active_key_file, load_signer
    from aiaudit.pipeline.score.models import promote, trained_models

    models_dir = _models_dir(args, settings)
    if not args.version:
        models = trained_models(models_dir)
        newest = f"; the newest trained is {models[0]['version']} (trained {models[0]['trained_at']})" if models else \
            "; none is trained yet: run `aiaudit detect train`"
        raise ConfigError(f"`aiaudit detect promote` needs --version{newest} (`aiaudit detect list` shows all)")
    signer = load_signer(active_key_file(settings.signing.keys_dir, settings.signing.key_file))
    by = args.by or os.environ.get("USER") or "operator"
    with model_errors():
        manifest = promote(models_dir, args.version, signer, by=by)
    print(f"{manifest['version']} is live (sha256 {manifest['sha256']}), promoted by {by}, signed by key {signer.kid}")
    return 0
