"""Incidents (pure): findings group per identity and family, close after a quiet time, page once,
and a daily budget holds back pages into a digest except where an exempt rule fired."""

from __future__ import annotations

import pytest

from aiaudit.detectors.incidents import (
    MAX_DIGEST,
    QUIET_S,
    Grouper,
    Incident,
    Pager,
    family_of,
    incident_from_dict,
    incident_to_dict,
    join,
    window_start,
)

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


def test_the_daily_paging_budget_holds_back_pages_into_a_digest_except_exempt_rules():
    g = Grouper(pager=Pager(per_day=4, exempt=frozenset({"sensitive_to_unapproved_vendor"})))
    paged = [g.add(f"user{i}", INJ, "high", 0.80, T + i, f"r{i}").pages for i in range(4)]
    # Half the budget pages at high; after that the bar is critical (the running threshold).
    assert paged == [True, True, False, False] and g.pager.bar() == "critical"
    held = [i for i in g.incidents() if i.held]
    assert [i.identity for i in held] == ["user2", "user3"] and g.pager.digest == [i.uid for i in held]
    assert g.add("user6", [("secrets_sent", 0.95)], "critical", 0.95, T + 6, "r6").pages  # critical clears the bar
    assert g.add("user7", [("secrets_sent", 0.95)], "critical", 0.95, T + 7, "r7").pages  # the budget's last page
    assert not g.add("user8", [("secrets_sent", 0.95)], "critical", 0.95, T + 8, "r8").pages  # spent
    assert g.add("user9", [("sensitive_to_unapproved_vendor", 0.80)], "high", 0.80, T + 9, "r9").pages  # exempt
    # A held incident does not page later in the day either; the next day has a fresh budget, and
    # the finished day's digest waits to be taken, once.
    assert not g.add("user2", INJ, "high", 0.80, T + 100, "r10").pages
    digest = list(g.pager.digest)
    assert g.add("user5", INJ, "high", 0.80, T + 86_400, "r11").pages and g.pager.digest == []
    assert g.pager.take_finished() == [(int(T // 86_400), digest)] and g.pager.take_finished() == []


def test_a_days_digest_is_bounded_and_counts_what_it_holds():
    g = Grouper(pager=Pager(per_day=1))
    for i in range(MAX_DIGEST + 50):
        g.add(f"user{i}", INJ, "high", 0.80, T + i, f"r{i}")
    assert len(g.pager.digest) == MAX_DIGEST and g.pager.held_today == MAX_DIGEST + 49
    again = Pager(per_day=1)
    again.restore(g.pager.to_dict())
    assert again.held_today == MAX_DIGEST + 49


def test_without_a_budget_every_incident_a_rule_makes_high_pages():
    g = Grouper()
    assert all(g.add(f"user{i}", INJ, "high", 0.80, T + i, f"r{i}").pages for i in range(50))
    assert g.pager.digest == [] and g.pager.bar() == "high"


def test_the_pager_and_an_incident_survive_their_saved_forms():
    g = Grouper(pager=Pager(per_day=2))
    for i in range(3):
        g.add(f"user{i}", INJ, "high", 0.80, T + i, f"r{i}")
    again = Pager(per_day=2)
    again.restore(g.pager.to_dict())
    assert again == g.pager
    inc = g.incidents()[0]
    assert incident_from_dict(incident_to_dict(inc)) == inc
    bad = incident_to_dict(inc) | {"severity": "catastrophic"}
    with pytest.raises(ValueError):
        incident_from_dict(bad)


def test_join_keeps_the_identity_open_incidents_in_its_own_mapping_and_says_which_closed():
    mine: dict[str, Incident] = {}
    first = join(mine, "alice", INJ, "high", 0.80, T, "r1")
    assert first.pages and set(mine) == {"injection"}
    first.incident.paged = True  # the pager took it
    assert not join(mine, "alice", INJ, "critical", 0.95, T + 5, "r2").pages  # pages once
    later = join(mine, "alice", INJ, "high", 0.80, T + QUIET_S + 10, "r3")
    assert later.closed is first.incident and later.incident.previous == first.incident.uid and later.pages


def test_families_and_the_windows_behind_a_finding():
    assert family_of([("request_burst", 0.6), ("secrets_sent", 0.8)]) == "data_exposure"
    assert family_of([("something_new", 0.6)]) == "other"
    assert window_start("request_burst", T) == T - 60
    assert window_start("volume_above_profile", T) == T - T % 86_400  # the UTC day it counted
    assert window_start("prompt_injection", T) == T
    g = Grouper()
    inc = g.add("alice", [("volume_above_profile", 0.6)], "medium", 0.6, T, "r1").incident
    assert inc.window_start == T - T % 86_400
