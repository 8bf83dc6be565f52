"""The delivery agent's pager (pure): the organisation's daily budget decides which incident pages;
the held ones are listed in the day's digest, which stays in the pager's state until delivered;
the digest is a finding every destination form can carry."""

from __future__ import annotations

import orjson
import pytest

from aiaudit.detectors.features import IdentityState
from aiaudit.pipeline.deliver.formats import chat_message, parse_finding, splunk_hec_body, summary, uid_of
from aiaudit.pipeline.deliver.pages import decide, digest_delivered, digest_finding, roll_day
from aiaudit.pipeline.deliver.policy import suppression_keys
from aiaudit.pipeline.score.incidents import group
from aiaudit.pipeline.score.ocsf import incident_finding
from aiaudit.pipeline.score.step import Scored

DAY = 86_400
T = 20_430 * DAY + 3600.0


def page(identity: str, rule: str, severity: str, at: float) -> dict:
    finding = {"actor": {"user": {"uid": identity, "type": "workforce"}}, "finding_info": {"uid": f"f-{identity}"},
               "unmapped": {"chain": {"origin": "o", "seq": 1, "leaf_hash": "ab" * 32}, "route": "chat"}}
    s = Scored("o", 1, "ab" * 32, identity, "", 0.8, severity, "rules-only", finding, at,
               ((rule, {"high": 0.8, "critical": 0.95}[severity]),))
    (u,) = group([s], {identity: IdentityState()})
    assert u.page
    return incident_finding(incident=u.incident, activity=u.activity, page=True, last=finding,
                            detected_at_ms=int(at * 1000), rules_version="rules-2", model_version="rules-only")


def test_the_budget_decides_and_a_finished_days_digest_waits_until_delivered():
    state = None
    decided = []
    for i, (rule, sev) in enumerate([("prompt_injection", "high")] * 3 + [("secrets_sent", "high")]):
        pages, state, digests = decide(state, page(f"u{i}", rule, sev, T + i), per_day=2, exempt=["secrets_sent"])
        decided.append(pages)
        assert digests == []
    assert decided == [True, False, False, True]  # past half of 2 the bar is critical; the exempt rule pages
    assert [h["identity"] for h in state["held"].values()] == ["u1", "u2"]
    pages, state, digests = decide(state, page("u5", "prompt_injection", "high", T + DAY), per_day=2, exempt=[])
    assert pages and [(d, [h["identity"] for h in held]) for d, held in digests] == [(20_430, ["u1", "u2"])]
    # Until it is delivered, every decision hands it on again (a restart sends it, under the same ids).
    _, state, again = decide(state, page("u6", "prompt_injection", "critical", T + DAY + 1), per_day=2, exempt=[])
    assert [d for d, _ in again] == [20_430]
    state = digest_delivered(state, 20_430)
    _, state, after = decide(state, page("u7", "prompt_injection", "critical", T + DAY + 2), per_day=2, exempt=[])
    assert after == [] and state["held"] == {k: v for k, v in state["held"].items() if v["identity"] == "u7"}


def test_a_replayed_incident_gets_the_decision_it_had_though_the_budget_moved_on():
    """After a kill the agent replays incidents from its committed offset with the pager's saved
    state, which already counts them: each keeps its decision, also across midnight."""
    incidents = [page(f"u{i}", "prompt_injection", sev, T + i) for i, sev in enumerate(("high", "critical", "high"))]
    state = None
    first = []
    for f in incidents:
        pages, state, _ = decide(state, f, per_day=2, exempt=[])
        first.append(pages)
    assert first == [True, True, False]  # the budget is spent
    for f in incidents:  # replayed: the paged ones still page, the held one is still held, nothing more is counted
        pages, state, _ = decide(state, f, per_day=2, exempt=[])
        assert pages == first.pop(0)
    assert state["pager"]["paged_today"] == 2 and state["pager"]["held_today"] == 1
    _, next_day, _ = decide(state, page("n0", "prompt_injection", "high", T + DAY), per_day=2, exempt=[])
    replayed = [decide(next_day, f, per_day=2, exempt=[])[0] for f in incidents]
    assert replayed == [True, True, False]
    # two days on, a stray replay is judged afresh by that day's budget (the pager remembers one day back)
    _, later, _ = decide(next_day, page("n1", "prompt_injection", "high", T + 2 * DAY), per_day=2, exempt=[])
    assert decide(later, incidents[0], per_day=2, exempt=[])[0] is False  # the bar is critical now


def test_the_clock_finishes_a_day_that_is_over_and_never_one_that_is_not():
    state = None
    for i in range(3):
        _, state, _ = decide(state, page(f"u{i}", "prompt_injection", "high", T + i), per_day=2, exempt=[])
    same_day, nothing = roll_day(state, T + 3600, per_day=2, exempt=[])
    assert nothing == [] and same_day["pager"]["paged_today"] == 1
    next_day, digests = roll_day(state, T + DAY, per_day=2, exempt=[])
    assert [(d, [h["identity"] for h in held]) for d, held in digests] == [(20_430, ["u1", "u2"])]
    assert next_day["pager"]["paged_today"] == 0  # the new day's budget is whole


def test_a_digest_is_a_finding_every_destination_form_carries():
    held = [{"uid": "a" * 32, "identity": "bob@acme.example", "family": "injection", "severity": "high", "findings": 3},
            {"uid": "b" * 32, "identity": "*evil* <!here>", "family": "volume", "severity": "critical", "findings": 9}]
    d = digest_finding("acme", 20_430, held, now_ms=int(T * 1000))
    assert parse_finding(orjson.dumps(d)) == d and uid_of(d) == "digest:acme:2025-12-08"
    s = summary(d)
    assert s["severity"] == "critical" and "2 incident(s) held back" in s["title"] and "bob@acme.example" in s["why"]
    assert orjson.loads(splunk_hec_body(d))["sourcetype"] == "ocsf:incident_finding"
    assert "<!here>" not in orjson.loads(chat_message(d))["text"]  # emitter text escaped in chat
    assert suppression_keys(d) == []


def test_an_incident_page_is_delivered_under_the_incident_uid_and_never_suppressed():
    f = page("ann", "prompt_injection", "high", T)
    assert uid_of(f) == f["finding_info_list"][0]["uid"] == f["unmapped"]["incident"]["uid"]
    assert suppression_keys(f) == []
    assert "aiaudit incidents show" in orjson.loads(chat_message(f))["text"]


@pytest.mark.parametrize("change", [{"severity": "Apocalyptic"}, {"detectors": ["x"]}, {"rule_severity": "low"}])
def test_a_malformed_incident_is_refused_by_the_pager(change):
    f = page("ann", "prompt_injection", "high", T)
    if "severity" in change:
        f["severity"] = change["severity"]
    else:
        f["unmapped"]["incident"].update(change)
    with pytest.raises((ValueError, TypeError, KeyError)):
        decide(None, f, per_day=2, exempt=[])
