"""Incidents (pure): findings group per identity and family, close after a quiet time, page once,
and a daily budget holds back pages into a digest except for exempt families."""

from __future__ import annotations

from aiaudit.detectors.incidents import QUIET_S, Grouper, Pager, family_of, window_start

T = 1_790_000_000.0  # epoch seconds
INJ = [("prompt_injection", 0.80)]
BURST = [("request_burst", 0.60)]
MODEL_HIGH = [("isolation-forest", 0.80)]


def test_findings_of_one_identity_and_family_make_one_incident_that_pages_once():
    g = Grouper()
    first = g.add("alice", INJ, "high", 0.80, T, "r1")
    assert first.kind == "opened" and first.pages
    later = [g.add("alice", INJ, "high", 0.80, T + 60 * i, f"r{i}") for i in range(2, 6)]
    assert all(c.kind == "updated" and not c.pages for c in later)  # updates never page again
    (inc,) = g.incidents()
    assert inc.findings == 5 and inc.records == ["r1", "r2", "r3", "r4", "r5"] and inc.detectors == {"prompt_injection": 5}
    assert (inc.opened_at, inc.last_seen) == (T, T + 300)
    # Another family of the same identity, and the same family of another identity, are incidents of their own.
    assert g.add("alice", BURST, "medium", 0.60, T + 300, "r6").kind == "opened"
    assert g.add("bob", INJ, "high", 0.80, T + 300, "r7").kind == "opened"
    assert len(g.incidents()) == 3


def test_an_incident_closes_after_its_quiet_time_and_the_next_finding_opens_one_linked_to_it():
    g = Grouper()
    a = g.add("alice", INJ, "high", 0.80, T, "r1").incident
    assert g.add("alice", INJ, "high", 0.80, T + QUIET_S - 1, "r2").incident is a  # still open
    b = g.add("alice", INJ, "high", 0.80, T + 2 * QUIET_S, "r3")
    assert b.kind == "opened" and b.incident.uid != a.uid and b.incident.previous == a.uid and b.pages
    assert [i.uid for i in g.incidents()] == [a.uid, b.incident.uid]


def test_an_incident_pages_when_a_rule_makes_it_high_and_never_on_the_model_alone():
    g = Grouper()
    medium = g.add("alice", BURST, "medium", 0.60, T, "r1")
    assert not medium.pages
    # The same incident escalates: a rule of its family at high pages it, once.
    up = g.add("alice", [("dormant_identity_burst", 0.80)], "high", 0.80, T + 30, "r2")
    assert up.incident is medium.incident and up.pages and up.incident.severity == "high"
    model = g.add("carol", MODEL_HIGH, "high", 0.80, T, "r3")
    assert model.incident.severity == "high" and not model.pages  # a lead for the queue, not a page
    both = g.add("dave", [("isolation-forest", 0.95), ("prompt_injection", 0.80)], "critical", 0.95, T, "r4")
    assert both.pages and both.incident.family == "anomaly"  # its highest-scoring detector names the family


def test_the_daily_paging_budget_holds_back_pages_into_a_digest_except_exempt_families():
    g = Grouper(pager=Pager(per_day=2, exempt=frozenset({"data_exposure"})))
    paged = [g.add(f"user{i}", INJ, "high", 0.80, T + i, f"r{i}").pages for i in range(4)]
    assert paged == [True, True, False, False]
    held = [i for i in g.incidents() if i.held]
    assert [i.identity for i in held] == ["user2", "user3"] and g.pager.digest == [i.uid for i in held]
    assert g.add("user9", [("sensitive_to_unapproved_vendor", 0.80)], "high", 0.80, T + 9, "r9").pages  # exempt
    # A held incident does not page later in the day either; the next day has a fresh budget.
    assert not g.add("user2", INJ, "high", 0.80, T + 100, "r10").pages
    assert g.add("user5", INJ, "high", 0.80, T + 86_400, "r11").pages and g.pager.digest == []


def test_families_and_the_windows_behind_a_finding():
    assert family_of([("request_burst", 0.6), ("secrets_sent", 0.8)]) == "data_exposure"
    assert family_of([("something_new", 0.6)]) == "other"
    assert window_start("request_burst", T) == T - 60
    assert window_start("volume_above_profile", T) == T - T % 86_400  # the UTC day it counted
    assert window_start("prompt_injection", T) == T
    g = Grouper()
    inc = g.add("alice", [("volume_above_profile", 0.6)], "medium", 0.6, T, "r1").incident
    assert inc.window_start == T - T % 86_400
