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
    "errors": 0, "names": 0, "settings": 0, "jcs": 0, "timespec": 0, "keys": 0,
    "contract": 1, "kafka": 1,
    "emit": 2, "chain": 2,
    "store": 3,
    "sink": 4,
    "query": 5, "verify": 5, "witness": 5,
    "score": 6, "deliver": 6,
    "gateway": 7,
    "ops": 8,
    "cli": 9, "__init__": 9,
}
NEVER = {("emit", "chain"), ("chain", "emit")}  # siblings that must not know each other
EDGES = {"pipeline.chain.worker", "pipeline.sink.worker", "pipeline.score.worker", "pipeline.gateway.app",
         "pipeline.deliver.agent"}
MAY_START_WORKERS = {"cli", "ops"}

PURE = [
    "pipeline.jcs", "pipeline.errors", "pipeline.names", "pipeline.contract", "pipeline.contract.schema",
    "pipeline.contract.codec", "pipeline.chain.record", "pipeline.chain.step", "pipeline.store.filters",
    "pipeline.store.evidence", "pipeline.store.dead_letters", "pipeline.store.alerts", "pipeline.store.policies", "pipeline.store.promotions",
    "pipeline.store.content", "pipeline.sink.rows", "pipeline.kafka.config", "pipeline.verify.rules",
    "pipeline.verify.reconcile", "pipeline.verify.run", "pipeline.score.step", "pipeline.score.ocsf",
    "pipeline.gateway.wire", "pipeline.gateway.classify", "pipeline.gateway.policy", "pipeline.gateway.event",
    "pipeline.emit.synthetic", "pipeline.witness.core", "pipeline.chain.merkle", "pipeline.chain.note",
    "pipeline.chain.checkpoint", "pipeline.verify.tree", "pipeline.timespec", "pipeline.query.export_file", "pipeline.gateway.shape",
    "pipeline.deliver.formats", "pipeline.deliver.policy", "pipeline.deliver.redrive", "pipeline.store.deliveries",
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
        out[".".join(parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every pipeline module a file imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pipeline"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
            if node.module == "pipeline":
                found.update(f"pipeline.{a.name}" for a in node.names)
            else:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_of_the_tree_has_a_rank():
    assert {_part(m) for m in _modules()} <= set(RANK)


def _violations(module: str, imports: set[str], known: set[str]) -> list[str]:
    mine = _part(module)
    problems = []
    for target in sorted(imports & known):  # names imported from a module (`from pipeline.x import f`) drop out
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
    bad.write_text("def f():\n    from pipeline.chain.worker import ChainWorker\nfrom pipeline import sink\n")
    found = _violations("pipeline.emit.bad", _imports(bad), set(_modules()))
    assert found == ["pipeline.emit.bad imports pipeline.chain.worker: emit and chain must not depend on each other",
                     "pipeline.emit.bad imports pipeline.chain.worker: another step's worker or HTTP edge",
                     "pipeline.emit.bad imports pipeline.sink: sink comes after emit in the data flow"]
    assert _violations("pipeline.ops.demo", _imports(bad), set(_modules())) == []


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_load_no_io_library(module):
    code = (f"import sys, {module}; "
            f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({IO_LIBRARIES!r})); print(bad); "
            "sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"{module} loads {result.stdout.strip()} {result.stderr[-500:]}"
