"""The dependency rules of the tree, held by a test (they lived only in prose before).

1. Data-flow order: a module imports only from its own step or steps before it
   (contract -> emit | chain -> store -> sink -> query | verify -> score; gateway at the edge,
   ops and the CLI on top). emit and chain never import each other.
2. No step imports another step's worker or HTTP edge (chain/worker, sink/worker, score/worker,
   gateway/app): only the CLI and ops/ start workers.
3. Pure modules import no I/O library (Kafka, Faust, ClickHouse, HTTP), checked on the modules a
   fresh interpreter actually loads, so an import hidden behind a package __init__ counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "pipeline"

# Rank of each top-level part of pipeline/: a module may import ranks <= its own.
RANK = {
    "errors": 0, "logs": 0, "names": 0, "settings": 0, "jcs": 0, "timespec": 0, "keys": 0, "files": 0, "metrics": 0, "ocsf": 0, "collector": 0,
    "contract": 1, "kafka": 1,
    "emit": 2, "chain": 2,
    "store": 3, "export": 3, "signer": 3,
    "sink": 4,
    "query": 5, "verify": 5, "witness": 5, "report": 5,
    "score": 6, "deliver": 6,
    "gateway": 7,
    "ops": 8, "console": 8, "litellm": 8, "otlp": 8,
    "cli": 9, "__init__": 9,
}
NEVER = {("emit", "chain"), ("chain", "emit")}  # siblings that must not know each other
EDGES = {"aiaudit.pipeline.chain.worker", "aiaudit.pipeline.sink.worker", "aiaudit.pipeline.score.worker", "aiaudit.pipeline.gateway.app",
         "aiaudit.pipeline.deliver.agent", "aiaudit.pipeline.otlp.receiver"}
MAY_START_WORKERS = {"cli", "ops"}

PURE = [
    "aiaudit.pipeline.jcs", "aiaudit.pipeline.errors", "aiaudit.pipeline.names", "aiaudit.pipeline.contract", "aiaudit.pipeline.contract.schema",
    "aiaudit.pipeline.contract.codec", "aiaudit.pipeline.chain.record", "aiaudit.pipeline.chain.step", "aiaudit.pipeline.store.filters",
    "aiaudit.pipeline.store.evidence", "aiaudit.pipeline.store.dead_letters", "aiaudit.pipeline.store.alerts", "aiaudit.pipeline.store.policies", "aiaudit.pipeline.store.promotions",
    "aiaudit.pipeline.store.content", "aiaudit.pipeline.sink.rows", "aiaudit.pipeline.kafka.config", "aiaudit.pipeline.verify.rules",
    "aiaudit.pipeline.verify.reconcile", "aiaudit.pipeline.verify.run", "aiaudit.pipeline.score.step", "aiaudit.pipeline.score.ocsf",
    "aiaudit.pipeline.gateway.wire", "aiaudit.pipeline.gateway.classify", "aiaudit.pipeline.gateway.policy", "aiaudit.pipeline.gateway.event",
    "aiaudit.pipeline.emit.synthetic", "aiaudit.pipeline.witness.core", "aiaudit.pipeline.chain.merkle", "aiaudit.pipeline.chain.note",
    "aiaudit.pipeline.chain.checkpoint", "aiaudit.pipeline.verify.tree", "aiaudit.pipeline.timespec", "aiaudit.pipeline.export.format", "aiaudit.pipeline.gateway.shape",
    "aiaudit.pipeline.deliver.formats", "aiaudit.pipeline.deliver.policy", "aiaudit.pipeline.deliver.redrive", "aiaudit.pipeline.store.deliveries",
    "aiaudit.pipeline.chain.record_v2", "aiaudit.pipeline.chain.kinds", "aiaudit.pipeline.chain.formats",
    "aiaudit.pipeline.store.kind_evidence", "aiaudit.pipeline.verify.projections",
    "aiaudit.pipeline.contract.access", "aiaudit.pipeline.contract.analysts", "aiaudit.pipeline.store.access",
    "aiaudit.pipeline.contract.sealed", "aiaudit.pipeline.contract.erasure", "aiaudit.pipeline.store.erasures",
    "aiaudit.pipeline.contract.key_sets", "aiaudit.pipeline.store.key_sets", "aiaudit.pipeline.store.rules_versions",
    "aiaudit.pipeline.report.figures", "aiaudit.pipeline.report.html", "aiaudit.pipeline.report.svg",
    "aiaudit.pipeline.contract.signed_record", "aiaudit.pipeline.console.roles", "aiaudit.pipeline.console.sessions",
    "aiaudit.pipeline.console.reports", "aiaudit.pipeline.litellm.mapping",
    "aiaudit.pipeline.otlp.mapping", "aiaudit.pipeline.otlp.wire", "aiaudit.pipeline.collector",
]
IO_LIBRARIES = ("confluent_kafka", "faust", "aiokafka", "clickhouse_connect", "chdb", "aiohttp", "starlette",
                "uvicorn", "httpx")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PIPELINE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out["aiaudit." + ".".join(parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every pipeline module a file imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("aiaudit.pipeline"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aiaudit.pipeline"):
            if node.module == "aiaudit.pipeline":
                found.update(f"aiaudit.pipeline.{a.name}" for a in node.names)
            else:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _part(module: str) -> str:
    parts = module.split(".")  # aiaudit.pipeline.<part>...
    return parts[2] if len(parts) > 2 else "__init__"


def test_every_part_of_the_tree_has_a_rank():
    assert {_part(m) for m in _modules()} <= set(RANK)


def _violations(module: str, imports: set[str], known: set[str]) -> list[str]:
    mine = _part(module)
    problems = []
    for target in sorted(imports & known):  # names imported from a module (`from aiaudit.pipeline.x import f`) drop out
        theirs = _part(target)
        if theirs == mine:
            continue
        if RANK[theirs] > RANK[mine]:
            problems.append(f"{module} imports {target}: {theirs} comes after {mine} in the data flow")
        if (mine, theirs) in NEVER:
            problems.append(f"{module} imports {target}: {mine} and {theirs} must not depend on each other")
        if target in EDGES and mine not in MAY_START_WORKERS:
            problems.append(f"{module} imports {target}: another step's worker or HTTP edge")
    return problems


def test_imports_follow_the_data_flow_and_no_step_imports_another_steps_worker():
    known = _modules()
    problems = [p for module, path in sorted(known.items()) for p in _violations(module, _imports(path), set(known))]
    assert not problems, "\n".join(problems)


def test_the_rules_would_catch_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from aiaudit.pipeline.chain.worker import ChainWorker\nfrom aiaudit.pipeline import sink\n")
    found = _violations("aiaudit.pipeline.emit.bad", _imports(bad), set(_modules()))
    assert found == ["aiaudit.pipeline.emit.bad imports aiaudit.pipeline.chain.worker: emit and chain must not depend on each other",
                     "aiaudit.pipeline.emit.bad imports aiaudit.pipeline.chain.worker: another step's worker or HTTP edge",
                     "aiaudit.pipeline.emit.bad imports aiaudit.pipeline.sink: sink comes after emit in the data flow"]
    assert _violations("aiaudit.pipeline.ops.demo", _imports(bad), set(_modules())) == []


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_load_no_io_library(module):
    code = (f"import sys, {module}; "
            f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({IO_LIBRARIES!r})); print(bad); "
            "sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"{module} loads {result.stdout.strip()} {result.stderr[-500:]}"
