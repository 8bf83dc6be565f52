"""`aiaudit report` and `aiaudit verify --report`: the auditor's evidence pack.

    DIR/export.jsonl    the records behind every figure (an `aiaudit export`, sealed by the operator key)
    DIR/report.json     the facts of the report and every figure (pipeline/report/figures.py)
    DIR/report.html     the page: self-contained, fetches nothing (pipeline/report/html.py)
    DIR/report.pdf      the page printed by the system's Chromium (--pdf)
    DIR/manifest.json   the SHA-256 of each file, sealed by the operator key

The manifest's seal is Ed25519 over `b"aiaudit/report-manifest/v1\\n" + JCS(manifest without
"seal")`. Checking a pack needs no database: the seal under a pinned operator key, each file's
hash, the export (every record's signature, its inclusion proof, the export's own seal), and every
figure of report.json computed again from the export.

An unscoped report's export holds, for each chain with records in the period, every record from
one dated before the period (or the chain's start) to one dated after it (or the chain's end), with
proofs to the chain's newest signed checkpoint, so records removed at either edge are caught
(figures.completeness). A
scoped report (one actor, route, vendor or policy version) holds the scope's records: genuine, but
whether every one was returned rests on the store.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aiaudit import __version__
from aiaudit.pipeline import store
from aiaudit.pipeline.contract import format_ts, parse_ts
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.export.read import read_export_file
from aiaudit.pipeline.jcs import canonicalize
from aiaudit.pipeline.query.export import export_records
from aiaudit.pipeline.report import figures as figures_mod
from aiaudit.pipeline.report import html
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import evidence, kind_evidence
from aiaudit.pipeline.store.filters import Filters
from aiaudit.pipeline.verify.run import VerifyReport, verify_export
from aiaudit.pipeline.verify.trust import Trust

MANIFEST_DOMAIN = b"aiaudit/report-manifest/v1\n"
REPORT_FORMAT = 1
FILES = ("export.jsonl", "report.json", "report.html")
SCOPES = ("actor", "route", "provider", "policy_version")  # the filters a report may be limited by
MAX_MANIFEST_BYTES = 1 << 16
MAX_REPORT_JSON_BYTES = 64 << 20


def controls() -> dict[str, Any]:
    """The control mapping the report reads (pipeline/report/controls.json, versioned)."""
    text = resources.files("aiaudit.pipeline.report").joinpath("controls.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def manifest_body(files: dict[str, str], facts: dict[str, Any]) -> dict[str, Any]:
    return {"aiaudit_report": REPORT_FORMAT, "since": facts["since"], "until": facts["until"],
            "scope": facts["scope"], "generated_at": facts["generated_at"], "files": files}


def seal_manifest(body: dict[str, Any], operator: Ed25519PrivateKey) -> dict[str, Any]:
    sig = operator.sign(MANIFEST_DOMAIN + canonicalize(body))
    key = operator.public_key().public_bytes_raw()
    return {**body, "seal": {"key": base64.b64encode(key).decode("ascii"), "sig": base64.b64encode(sig).decode("ascii")}}


def manifest_problem(manifest: Any, operator_keys: tuple[bytes, ...] | list[bytes]) -> str | None:
    """Why a manifest is not one a pinned operator key sealed (None when it is)."""
    if not isinstance(manifest, dict) or set(manifest) != {"aiaudit_report", "since", "until", "scope", "generated_at",
                                                             "files", "seal"}:
        return "manifest.json is not a report manifest (aiaudit_report, since, until, scope, generated_at, files, seal)"
    if manifest["aiaudit_report"] != REPORT_FORMAT:
        return f"manifest.json is report format {str(manifest['aiaudit_report'])[:10]!r}, not {REPORT_FORMAT}"
    seal = manifest["seal"]
    try:
        key, sig = base64.b64decode(seal["key"], validate=True), base64.b64decode(seal["sig"], validate=True)
    except (TypeError, KeyError, ValueError):
        return "manifest.json's seal is not {key, sig} in base64"
    if not operator_keys:
        return "no operator public key to check the manifest's seal: give --operator-key or --trust"
    if key not in operator_keys:
        return "manifest.json is sealed by an operator key that is not pinned (--operator-key, the trust file)"
    body = {k: v for k, v in manifest.items() if k != "seal"}
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig, MANIFEST_DOMAIN + canonicalize(body))
    except (InvalidSignature, ValueError):
        return "manifest.json's seal does not verify: the manifest was changed after the report was written"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def period_slices(client: Client, settings: Settings, since: datetime, until: datetime) -> list[tuple[str, int, int]]:
    """(origin, first, last) of each chain with records in the period, widened at each end to a
    record dated outside it: back to the last record before the period's first that is dated before
    the period (or the chain's start), on to the first after its last that is dated after the period
    (or the chain's end). A request's time is its emitter's: records outside the period can sit
    between the period's own, and are exported with them (they are not counted).

    A chain with records before the period and none in it (quiet, or stopped: stale) is there too,
    from its last record before the period to its first after it (or its end), so the report can say
    which chains signed nothing through the period."""
    db, period = store.database(settings), Filters(since=since, until=until)
    out = []
    for table, module in zip(evidence.CHAIN_TABLES, (evidence, kind_evidence)):
        _, rows = store.query_rows(client, *module.select_chain_slices(db, period))
        spans = [(str(origin), int(lo), int(hi)) for origin, lo, hi in rows]
        active = {origin for origin, _, _ in spans}
        _, quiet = store.query_rows(client, *evidence.select_last_before(db, since, table=table))
        # A quiet chain: no record in the period, so its bounds are sought from just after its last
        # record before it (first = last + 1: the record before is that last one).
        spans += [(str(origin), int(last) + 1, int(last)) for origin, last in quiet if str(origin) not in active]
        for origin, lo, hi in spans:
            _, bounds = store.query_rows(client, *evidence.select_period_bounds(
                db, origin, lo, hi, since, until, table=table))
            start, end, last = bounds[0]
            out.append((origin, 0 if start is None else int(start), int(last) if end is None else int(end)))
    return sorted(out)


def write_report(client: Client, settings: Settings, out_dir: Path, *, since: datetime, until: datetime,
                 scope: dict[str, str], operator: Ed25519PrivateKey, now: datetime,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the pack into `out_dir` (created; files there are replaced). Returns report.json's content."""
    unknown = set(scope) - set(SCOPES)
    if unknown:
        raise ConfigError(f"a report is scoped by {', '.join(SCOPES)}, not {', '.join(sorted(unknown))}")
    if since >= until:
        raise ConfigError("the period's start must be before its end")
    out_dir.mkdir(parents=True, exist_ok=True)
    export_path = out_dir / "export.jsonl"
    filters = Filters(since=since, until=until, limit=1, **scope)
    slices = None if scope else period_slices(client, settings, since, until)
    with export_path.open("w", encoding="utf-8") as out:
        summary = export_records(client, settings, filters, out, now=now, operator=operator, progress=progress,
                                 slices=slices)
    if progress:
        progress(f"export: {summary.records:,} record(s), {summary.checkpoints} checkpoint(s), "
                 f"{summary.ranges} range proof(s) of whole stretches, {summary.proofs:,} inclusion proof(s)")
        progress("computing the figures from the export")
    file = read_export_file(export_path)
    figures = figures_mod.compute(file, since, until, scoped=bool(scope))
    mapping = controls()
    facts = {"since": format_ts(since), "until": format_ts(until), "scope": dict(sorted(scope.items())),
             "generated_at": format_ts(now), "version": __version__, "export": export_path.name,
             "operator_key": base64.b64encode(operator.public_key().public_bytes_raw()).decode("ascii"),
             "controls_version": mapping["version"], "unproven": summary.unproven}
    report = {"aiaudit_report": REPORT_FORMAT, "facts": facts, "figures": figures}
    (out_dir / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    (out_dir / "report.html").write_text(html.render(figures, facts, mapping), encoding="utf-8")
    files = {name: _sha256(out_dir / name) for name in FILES}
    manifest = seal_manifest(manifest_body(files, facts), operator)
    (out_dir / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return report


def add_pdf(out_dir: Path) -> Path:
    """Print report.html to report.pdf with the system's Chromium (the PDF is not in the manifest:
    it is a rendering of the sealed HTML)."""
    from aiaudit.pipeline.report import browser

    pdf = out_dir / "report.pdf"
    browser.print_pdf(out_dir / "report.html", pdf)
    return pdf


def _load_json(path: Path, limit: int) -> Any:
    try:
        with path.open("rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from exc
    if len(raw) > limit:
        raise ConfigError(f"{path}: larger than {limit:,} bytes: not part of a report")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from exc


def _differences(expected: Any, stated: Any, path: str = "figures") -> list[str]:
    """Where report.json's figures differ from those the export gives (at most 20 places)."""
    if isinstance(expected, dict) and isinstance(stated, dict):
        out = []
        for k in sorted(set(expected) | set(stated)):
            if k not in stated:
                out.append(f"{path}.{k}: missing from the report")
            elif k not in expected:
                out.append(f"{path}.{k}: in the report, not given by the export")
            else:
                out += _differences(expected[k], stated[k], f"{path}.{k}")
        return out[:20]
    if expected != stated:
        return [f"{path}: the report says {json.dumps(stated)[:80]}, the export gives {json.dumps(expected)[:80]}"]
    return []


def check_report(out_dir: Path, trust: Trust) -> tuple[list[str], VerifyReport | None, dict[str, Any] | None]:
    """(problems, the export's verification, report.json) for a pack, offline. No problems and an
    export report that is ok: every figure is what the sealed, verified export gives, and the export
    shows every chain's stretch whole at both edges of the period."""
    problems: list[str] = []
    manifest = _load_json(out_dir / "manifest.json", MAX_MANIFEST_BYTES)
    problem = manifest_problem(manifest, trust.operator_keys)
    if problem:
        return [problem], None, None
    files = manifest["files"]
    if not isinstance(files, dict) or set(files) != set(FILES):
        return [f"manifest.json lists {sorted(files) if isinstance(files, dict) else files!r}, not {list(FILES)}"], None, None
    for name in FILES:
        path = out_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif _sha256(path) != files[name]:
            problems.append(f"{name} is not the file the report was sealed with (its SHA-256 differs)")
    if problems:
        return problems, None, None
    report = _load_json(out_dir / "report.json", MAX_REPORT_JSON_BYTES)
    facts = report.get("facts") if isinstance(report, dict) else None
    if not isinstance(facts, dict) or not isinstance(report.get("figures"), dict):
        return ["report.json holds no facts and figures"], None, None
    for k in ("since", "until", "scope"):
        if facts.get(k) != manifest[k]:
            problems.append(f"report.json's {k} is not the manifest's")
    try:
        since, until = parse_ts(str(manifest["since"])), parse_ts(str(manifest["until"]))
    except ValueError:
        return problems + ["the manifest's period is not two RFC 3339 times"], None, report
    stated_version = report["figures"].get("figures_version")
    if type(stated_version) is not int or stated_version not in figures_mod.FIGURES_VERSIONS:
        return problems + [f"report.json's figures are version {str(stated_version)[:10]}; this aiaudit computes versions "
                           f"{', '.join(map(str, figures_mod.FIGURES_VERSIONS))}: check it with aiaudit {str(facts.get('version'))[:40]}, "
                           "which wrote it"], None, report
    file = read_export_file(out_dir / "export.jsonl", lenient=True)
    header = file.header
    if header is None or header.filters.get("since") != manifest["since"] or header.filters.get("until") != manifest["until"]:
        problems.append("the export's filters are not the report's period")
    verified = verify_export(file, trust)
    expected = figures_mod.compute(file, since, until, scoped=bool(manifest["scope"]), version=stated_version)
    problems += _differences(orjson.loads(orjson.dumps(expected)), report["figures"])
    # Genuine, but showing evidence missing at an edge: the check fails, saying where.
    problems += [f"completeness: {p}" for p in expected["completeness"]["problems"]]
    return problems, verified, report
