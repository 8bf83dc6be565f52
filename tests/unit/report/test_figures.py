"""The report's figures from an export (pure): what they count, the edges they check, and the
page and manifest built from them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline.chain.formats import parse_stored
from aiaudit.pipeline.chain.note import Signature
from aiaudit.pipeline.chain.record import ChainHead, Source, build_record
from aiaudit.pipeline.contract import parse_ts
from aiaudit.pipeline.export.format import ExportedCheckpoint, ExportFile
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.report import figures, html
from aiaudit.pipeline.report.pack import controls, manifest_body, manifest_problem, seal_manifest
from tests.unit.helpers import KIND_ORIGIN, ORIGIN, build_chain, build_kind_chain, events

SIGNER = Ed25519Signer.generate()
CHAIN = build_chain(60, SIGNER)
TS = [parse_ts(parse_stored(r.payload)["ts"]) for r in CHAIN]
SINCE, UNTIL = TS[20], TS[40]  # records 20..39 are in the period


def _events(records):
    return [parse_stored(r.payload)["event"] for r in records]


def test_requests_are_counted_from_the_records_in_the_period_only():
    f = figures.compute(ExportFile(records=CHAIN), SINCE, UNTIL, scoped=False)
    inside = _events(CHAIN[20:40])
    assert f["requests"]["total"] == 20 == f["integrity"]["records_in_period"]
    assert f["requests"]["by_decision"] == dict(sorted(Counter(e["decision"] for e in inside).items(),
                                                       key=lambda kv: (-kv[1], kv[0])))
    assert sum(f["requests"]["by_classification"].values()) == 20
    assert sum(sum(d.values()) for d in f["requests"]["over_time"].values()) == 20
    assert f["plotted_by"] == "hour" and all(k.endswith(":00") for k in f["requests"]["over_time"])
    top = f["requests"]["top_identities"][0]
    assert top["requests"] == max(Counter(e["actor"]["id"] for e in inside).values())
    assert f["integrity"]["keys"][SIGNER.kid]["records"] == 20


def test_a_whole_stretch_with_both_edges_shows_completeness():
    f = figures.compute(ExportFile(records=CHAIN[19:41]), SINCE, UNTIL, scoped=False)
    (chain,) = f["completeness"]["chains"]
    assert f["completeness"]["problems"] == []
    assert (chain["first_seq"], chain["last_seq"], chain["before"], chain["after"]) == (
        20, 39, "record before the period", "record after the period")


@pytest.mark.parametrize("kept, problem", [
    (CHAIN[20:41], "no record dated before the period is shown before seq 20"),  # the record before removed
    (CHAIN[19:40], "after seq 39 (the period's last), neither"),  # the record after removed, no checkpoint instead
    (CHAIN[19:30] + CHAIN[31:41], "1 record(s) missing between seq 19 and 40 (first 30)"),  # one in the middle
])
def test_a_record_removed_at_either_edge_or_between_is_a_problem(kept, problem):
    f = figures.compute(ExportFile(records=kept), SINCE, UNTIL, scoped=False)
    assert any(problem in p for p in f["completeness"]["problems"]), f["completeness"]["problems"]


def test_records_dated_outside_the_period_between_its_own_are_in_the_stretch_not_in_the_figures():
    # An emitter whose clock is an hour behind: its records sit among the period's, dated before it.
    skewed, head = [], ChainHead.genesis(ORIGIN)
    for i, ev in enumerate(events(60)):
        if i in (25, 40):  # one among the period's records, one right after its last
            ev = {**ev, "occurred_at": (parse_ts(ev["occurred_at"]) - timedelta(hours=1)).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ")}
        rec = build_record(head, SIGNER, ev["occurred_at"], Source("ai.requests", 0, i), ev)
        skewed.append(rec)
        head = rec.next_head(i)
    f = figures.compute(ExportFile(records=skewed[19:42]), SINCE, UNTIL, scoped=False)
    (chain,) = f["completeness"]["chains"]
    assert f["requests"]["total"] == 19 and f["completeness"]["problems"] == []  # 20..39 but 25
    assert chain["after"] == "record after the period"  # 41, past the past-dated 40
    f = figures.compute(ExportFile(records=skewed[19:41]), SINCE, UNTIL, scoped=False)
    assert any("neither a record dated after the period" in p for p in f["completeness"]["problems"])


def _signed_at(origin, size, when, *, final=None):
    """A checkpoint line carrying the log's signed time `when` (parsed, not verified, by the figures)."""
    stamp = Signature(origin, 1, int(when.timestamp()).to_bytes(8, "big") + bytes(64)).line()
    return ExportedCheckpoint(origin, size, "note", (stamp,), final)


def test_a_chain_quiet_through_the_period_is_listed_and_stale_when_it_stopped_signing():
    quiet = build_kind_chain([orjson.dumps({"severity": "Low"})] * 3, SIGNER)  # dated long before the period
    origin = KIND_ORIGIN
    alive = figures.compute(ExportFile(records=CHAIN[19:41] + quiet[2:],
                                       checkpoints=[_signed_at(origin, 3, UNTIL + timedelta(seconds=20))]),
                            SINCE, UNTIL, scoped=False)
    listed = {c["origin"]: c for c in alive["completeness"]["chains"]}
    assert alive["completeness"]["problems"] == []
    assert listed[origin]["records"] == 0 and listed[origin]["first_seq"] is None
    assert listed[origin]["after"] == "checkpoint signed after the period, at the chain's last record"
    stopped = figures.compute(ExportFile(records=CHAIN[19:41] + quiet[2:],
                                         checkpoints=[_signed_at(origin, 3, SINCE - timedelta(minutes=5))]),
                              SINCE, UNTIL, scoped=False)
    (problem,) = stopped["completeness"]["problems"]
    assert problem.startswith(f"{origin}: stale: after seq 2 (its last before the period: none in it)")
    closed = figures.compute(ExportFile(records=CHAIN[19:41] + quiet[2:],
                                        checkpoints=[_signed_at(origin, 3, SINCE - timedelta(minutes=5), final="f")]),
                             SINCE, UNTIL, scoped=False)
    assert closed["completeness"]["problems"] == []
    assert {c["origin"]: c for c in closed["completeness"]["chains"]}[origin]["closed"] is True
    # Version 1 figures (an older report) did not list quiet chains: checked as they were computed.
    v1 = figures.compute(ExportFile(records=CHAIN[19:41] + quiet[2:]), SINCE, UNTIL, scoped=False, version=1)
    assert [c["origin"] for c in v1["completeness"]["chains"]] == [ORIGIN] and v1["figures_version"] == 1
    assert "commitments_by_route" not in v1["requests"] and "newest_signed_at" not in v1["completeness"]["chains"][0]


def test_each_route_says_what_it_kept_and_its_setting_in_the_bundles():
    chain, head = [], ChainHead.genesis(ORIGIN)
    for i, ev in enumerate(events(60)):  # every third request kept no commitment (content: none, or denied)
        ev = {**ev, "prompt_commitment": None, "response_commitment": None} if i % 3 == 0 else ev
        chain.append(build_record(head, SIGNER, ev["occurred_at"], Source("ai.requests", 0, i), ev))
        head = chain[-1].next_head(i)
    f = figures.compute(ExportFile(records=chain[19:41]), SINCE, UNTIL, scoped=False)
    inside = _events(chain[20:40])
    assert sum(c.get("without", 0) for c in f["requests"]["commitments_by_route"].values()) == 7  # 21, 24, ... 39
    for route, counts in f["requests"]["commitments_by_route"].items():
        mine = [e for e in inside if e["route"] == route]
        assert counts.get("with commitments", 0) == sum(1 for e in mine if e["prompt_commitment"])
        assert sum(counts.values()) == len(mine)
    bundle = {"routes": {"chat": {"content": "full"}, "code": {}}}
    p = {"policy_id": "p", "version": "1", "loaded_at": "t", "gateway": "gw", "canonical_json": orjson.dumps(bundle).decode()}
    assert figures._content_by_route([p, {**p, "canonical_json": "{not json"}]) == {"chat": ["full"], "code": ["commitments"]}


def test_each_emitters_numbering_shows_numbers_no_record_holds():
    f = figures.compute(ExportFile(records=CHAIN[19:30] + CHAIN[31:41]), SINCE, UNTIL, scoped=False)
    (emitter,) = f["completeness"]["emitters"]
    numbers = [e["emitter_seq"] for e in _events(CHAIN[20:40])]
    assert (emitter["events"], emitter["first"], emitter["last"]) == (19, min(numbers), max(numbers))
    assert emitter["unaccounted"] == 1  # record 30's event
    whole = figures.compute(ExportFile(records=CHAIN[19:41]), SINCE, UNTIL, scoped=False)
    assert whole["completeness"]["emitters"][0]["unaccounted"] == 0


def test_a_scoped_report_does_not_claim_completeness():
    f = figures.compute(ExportFile(records=CHAIN[25:26]), SINCE, UNTIL, scoped=True)
    assert f["completeness"]["checked"] is False and "rests on the store" in f["completeness"]["why"]


def test_findings_and_acknowledgements_give_the_time_to_acknowledge():
    base = 1_795_000_000_000
    finding = {"severity": "High", "finding_info": {"uid": "f-1"}}
    ack = {"finding_uid": "f-1", "status": "acknowledged", "by": "soc-1", "note": "",
           "at": datetime.fromtimestamp(base / 1000 + 90, timezone.utc).isoformat()}
    records = build_kind_chain([orjson.dumps(finding)], SIGNER) + build_kind_chain(
        [orjson.dumps(ack)], SIGNER, kind="status_change", origin="acme/test/ai.audit.alert-status/p0/g1")
    at = datetime.fromtimestamp(base / 1000, timezone.utc)
    f = figures.compute(ExportFile(records=records), at - timedelta(hours=1), at + timedelta(hours=1), scoped=False)
    assert f["monitoring"]["by_severity"] == {"high": 1} and f["monitoring"]["status_changes"] == {"acknowledged": 1}
    assert f["monitoring"]["time_to_acknowledge_s"] == {"median": 90.0, "max": 90.0}
    assert f["integrity"]["by_kind"] == {"finding": 1, "status_change": 1}


def test_policy_changes_say_what_changed_from_the_version_before():
    one = {"routes": {"chat": {"vendor": "openai"}}, "vendors": {"openai": "internal"}}
    two = {"routes": {"chat": {"vendor": "anthropic"}, "code": {}}, "vendors": {"openai": "internal"}}
    bundles = [{"policy_id": "p", "version": v, "loaded_at": t, "gateway": "gw", "canonical_json": orjson.dumps(d).decode()}
               for v, t, d in (("2", "2026-11-02", two), ("1", "2026-11-01", one))]
    changes = figures._policy_changes(bundles)
    assert [c["version"] for c in changes] == ["1", "2"]
    assert changes[0]["changed"] == ["first version"]
    assert changes[1]["changed"] == ["routes.code added", "routes.chat changed"]


def test_the_page_escapes_what_the_evidence_says_and_fetches_nothing():
    hostile = build_chain(3, SIGNER)
    f = figures.compute(ExportFile(records=hostile), TS[0], TS[2] + timedelta(seconds=1), scoped=False)
    f["requests"]["top_identities"][0]["id"] = '<script>alert(1)</script><img src="http://evil.example/x">'
    facts = {"since": "2026-11-28T09:00:00Z", "until": "2026-11-29T00:00:00Z", "scope": {}, "generated_at": "now",
             "version": "test", "export": "export.jsonl", "operator_key": "k"}
    page = html.render(f, facts, controls())
    assert "<script>" not in page and 'src="http://evil' not in page and "&lt;script&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    for section in html.SECTIONS:
        assert f'<section id="{section}">' in page
    for ref in ("A.5.33", "A.8.15", "A.8.16", "A.8.17", "A.6.2.8", "Art. 12(1)", "Art. 19(1)", "Art. 26(6)", "CC6.1",
                "CC7.2", "CC7.3", "CC8.1", "2024/1774"):
        assert ref in page, ref
    assert "<svg" in page


def test_the_manifest_seal_covers_every_member_and_names_its_key():
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes_raw()
    facts = {"since": "a", "until": "b", "scope": {"actor": "x"}, "generated_at": "c"}
    sealed = seal_manifest(manifest_body({"report.json": "00" * 32}, facts), key)
    assert manifest_problem(sealed, [pub]) is None
    assert "not pinned" in manifest_problem(sealed, [Ed25519PrivateKey.generate().public_key().public_bytes_raw()])
    for member, value in (("files", {"report.json": "11" * 32}), ("since", "z"), ("scope", {})):
        assert "does not verify" in manifest_problem({**sealed, member: value}, [pub])
    assert "not a report manifest" in manifest_problem({**sealed, "extra": 1}, [pub])
    assert "no operator public key" in manifest_problem(sealed, [])
