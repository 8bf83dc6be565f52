"""`aiaudit report` and `aiaudit verify --report` as an auditor uses them, on a real store: the pack
checks offline; a figure the export does not give is caught even when the operator re-seals it;
a record removed from the store at the period's edge shows; the page, rendered by Debian's
Chromium through chromedriver, shows its sections and fetches nothing (screenshot kept in
test-output/); --pdf prints it through the same browser."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from aiaudit.pipeline import store
from aiaudit.pipeline.contract import format_ts
from aiaudit.pipeline.keys import load_operator_key, operator_key_file
from aiaudit.pipeline.report.pack import manifest_body, seal_manifest
from tests.integration import webdriver
from tests.integration.support import T0, ChainWorkers, emit_synthetic, settings_env, sink_until_drained

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("AIAUDIT_TEST_OUTPUT", ROOT / "test-output"))
SINCE, UNTIL = T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)


def aiaudit(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", *args], capture_output=True, text=True,
                          env=settings_env(settings), timeout=300)


def _store(settings, client, tmp_path) -> list[dict]:
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        _, sent = emit_synthetic(settings, 600, emitter_id="edge-report", seed=41)
        sink_until_drained(settings, client)
    return sent


def test_a_report_verifies_offline_and_a_lie_in_it_is_caught(settings, client, tmp_path):
    sent = _store(settings, client, tmp_path)
    client.close()  # embedded chDB admits one process at a time: the CLI's turn
    out = tmp_path / "pack"
    made = aiaudit(settings, "report", "--since", format_ts(SINCE), "--until", format_ts(UNTIL), "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert "completeness shown" in made.stdout and f"aiaudit verify --report {out}" in made.stdout
    report = json.loads((out / "report.json").read_text())
    in_period = [e for e in sent if SINCE <= e["occurred_at"] < UNTIL]
    assert report["figures"]["requests"]["total"] == len(in_period) > 50
    assert report["figures"]["completeness"]["problems"] == []
    assert len(report["figures"]["completeness"]["chains"]) == settings.kafka.partitions

    ok = aiaudit(settings, "verify", "--report", str(out))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "every figure is what the verified export gives" in ok.stdout

    # The operator (who holds the key) changes a figure and seals the manifest again: the figures
    # are computed again from the export, so the lie shows.
    report["figures"]["requests"]["by_decision"]["deny"] = report["figures"]["requests"]["by_decision"].get("deny", 0) + 5
    (out / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    manifest = json.loads((out / "manifest.json").read_text())
    files = {**manifest["files"], "report.json": hashlib.sha256((out / "report.json").read_bytes()).hexdigest()}
    operator = load_operator_key(operator_key_file(settings.signing.keys_dir, None))
    (out / "manifest.json").write_bytes(orjson.dumps(seal_manifest(manifest_body(files, manifest), operator)))
    lie = aiaudit(settings, "verify", "--report", str(out), "--json")
    assert lie.returncode == 1
    problems = json.loads(lie.stdout)["problems"]
    assert any(p.startswith("figures.requests.by_decision.deny: the report says") for p in problems), problems

    # Anyone else's change to a sealed file shows as that file changed.
    (out / "report.html").write_text((out / "report.html").read_text().replace("AI evidence report", "All fine"))
    forged = aiaudit(settings, "verify", "--report", str(out))
    assert forged.returncode == 1 and "report.html is not the file the report was sealed with" in forged.stdout

    # A period the chains went quiet in and that ended after their workers stopped: every chain
    # is listed, and each one that signed nothing after its end is named stale.
    ended = datetime.now(timezone.utc)
    quiet = aiaudit(settings, "report", "--since", format_ts(T0 + timedelta(hours=1)), "--until", format_ts(ended),
                    "--out", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stderr
    figures = json.loads((tmp_path / "quiet" / "report.json").read_text())["figures"]["completeness"]
    requests_chains = [c for c in figures["chains"] if c["records"] == 0]
    assert len(requests_chains) == settings.kafka.partitions and all(c["first_seq"] is None for c in requests_chains)
    stale = [p for p in figures["problems"] if ": stale: " in p]
    assert len(stale) >= settings.kafka.partitions and all(c["newest_signed_at"] < format_ts(ended)
                                                            for c in figures["chains"])
    judged = aiaudit(settings, "verify", "--report", str(tmp_path / "quiet"))
    assert judged.returncode == 1 and "completeness: " in judged.stdout and ": stale: " in judged.stdout


def test_a_scoped_report_says_what_it_rests_on_and_a_record_removed_at_the_edge_stops_the_report(
        settings, client, tmp_path):
    _store(settings, client, tmp_path)
    db = settings.clickhouse.database
    actor = client.query(f"SELECT actor_id FROM {db}.evidence WHERE ts >= {{s:DateTime64(6, 'UTC')}} LIMIT 1",
                         parameters={"s": SINCE}).result_rows[0][0]
    client.close()
    scoped = tmp_path / "scoped"
    made = aiaudit(settings, "report", "--since", format_ts(SINCE), "--until", format_ts(UNTIL), "--actor", actor,
                   "--out", str(scoped))
    assert made.returncode == 0, made.stderr
    assert "scoped: completeness rests on the store" in made.stdout
    figures = json.loads((scoped / "report.json").read_text())["figures"]
    assert figures["completeness"]["checked"] is False and figures["requests"]["top_identities"][0]["id"] == actor
    assert aiaudit(settings, "verify", "--report", str(scoped)).returncode == 0

    # A period that ended after the chains' last records: their end is shown by the checkpoints signed
    # since (now, well after it).
    ended = tmp_path / "ended"
    made = aiaudit(settings, "report", "--since", format_ts(SINCE), "--until", format_ts(T0 + timedelta(hours=1)),
                   "--out", str(ended))
    assert made.returncode == 0 and "completeness shown" in made.stdout, made.stdout
    chains = json.loads((ended / "report.json").read_text())["figures"]["completeness"]["chains"]
    assert {c["after"] for c in chains} == {"checkpoint signed after the period, at the chain's last record"}
    assert aiaudit(settings, "verify", "--report", str(ended)).returncode == 0

    # A period that has not ended: no checkpoint is signed after it, so no chain's end is shown. The
    # report says so, and its check fails naming each chain.
    open_ended = tmp_path / "open-ended"
    made = aiaudit(settings, "report", "--since", format_ts(SINCE), "--until", "2099-01-01T00:00:00Z",
                   "--out", str(open_ended))
    chains = settings.kafka.partitions + 1  # the request chains, and the key-set chain (its record is of now)
    assert made.returncode == 0 and f"{chains} completeness problem(s)" in made.stdout, made.stdout
    checked = aiaudit(settings, "verify", "--report", str(open_ended))
    assert checked.returncode == 1
    assert checked.stdout.count("FAIL report: completeness: ") == chains, checked.stdout

    # The record just before the period deleted from the store: the report cannot prove the period's
    # records without it, and says which record is gone instead of writing a report without it.
    client = store.connect(settings)
    try:
        origin, first = client.query(
            f"SELECT origin, min(seq) FROM {db}.evidence WHERE ts >= {{s:DateTime64(6, 'UTC')}} "
            f"AND ts < {{u:DateTime64(6, 'UTC')}} GROUP BY origin ORDER BY origin LIMIT 1",
            parameters={"s": SINCE, "u": UNTIL}).result_rows[0]
        client.command(f"ALTER TABLE {db}.evidence DELETE WHERE origin = {{o:String}} AND seq = {{q:UInt64}} "
                       "SETTINGS mutations_sync = 1", parameters={"o": origin, "q": first - 1})
    finally:
        client.close()
    out = tmp_path / "edge"
    made = aiaudit(settings, "report", "--since", format_ts(SINCE), "--until", format_ts(UNTIL), "--out", str(out))
    assert made.returncode == 2 and f"{origin}: record {first - 1} is not stored" in made.stderr, made.stderr
    assert not (out / "manifest.json").exists()  # no sealed report of an incomplete period


def test_chromium_renders_the_report_with_every_section_and_fetches_nothing(settings, client, tmp_path):
    _store(settings, client, tmp_path)
    client.close()
    out = tmp_path / "seen"
    made = aiaudit(settings, "report", "--since", format_ts(SINCE), "--until", format_ts(UNTIL), "--out", str(out),
                   "--pdf")
    assert made.returncode == 0, made.stderr
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    page = out / "report.html"
    assert page.stat().st_size < 5 * 1_048_576

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with webdriver.browser() as b:
        b.requests()  # the browser's own start page, read off the log before the report is opened
        b.open(page)
        for section in ("summary", "scope", "period", "integrity", "completeness", "policy", "monitoring",
                        "configuration", "access", "erasure", "time", "controls"):
            assert b.displayed(f"section#{section} h2" if section != "summary" else "section#summary"), section
        assert b.displayed("section#period svg") and b.displayed("section#completeness p.ok")
        b.screenshot(OUTPUT / "report.png")
        assert b.requests() == [page.resolve().as_uri()]  # the page itself, and nothing it asked for
        # The control: the same browser and log do see a page that fetches something.
        bait = tmp_path / "bait.html"
        bait.write_text('<html><body><img src="http://example.invalid/pixel.png"></body></html>')
        b.open(bait)
        assert "http://example.invalid/pixel.png" in b.requests()
    png = (OUTPUT / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a page with text and plots, kept for a person
