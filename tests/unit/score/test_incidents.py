"""The scoring worker's half of incidents (pure): a batch's findings -> one update per incident it
touched, kept in the identities' states; an incident asks for its page once; its OCSF Incident
Finding is what the sink stores and the delivery agent pages with."""

from __future__ import annotations

import orjson
import pytest

from aiaudit.detectors.features import IdentityState, state_from_dict, state_to_dict
from aiaudit.detectors.incidents import QUIET_S
from aiaudit.pipeline.score.incidents import group
from aiaudit.pipeline.score.ocsf import incident_finding
from aiaudit.pipeline.score.step import BatchStates, Scored
from aiaudit.pipeline.store import incidents as table

T = 1_790_000_000.0
INJ = (("prompt_injection", 0.80),)
BURST = (("request_burst", 0.60),)


def scored(actor: str, seq: int, at: float, detectors=INJ, severity="high", score=0.80) -> Scored:
    finding = {"actor": {"user": {"uid": actor, "type": "human"}}, "finding_info": {"uid": f"f{seq}"},
               "unmapped": {"chain": {"origin": "o", "seq": seq, "leaf_hash": "ab" * 32}, "route": "chat"}}
    return Scored("o", seq, "ab" * 32, actor, "", score, severity, "rules-only", finding, at, detectors)


def ocsf(u) -> dict:
    return incident_finding(incident=u.incident, activity=u.activity, page=u.page, last=u.last.finding,
                            detected_at_ms=int(T * 1000), rules_version="rules-2", model_version="rules-only")


def test_a_batch_gives_one_update_per_incident_and_an_incident_asks_for_its_page_once():
    states = {"alice": IdentityState(), "bob": IdentityState()}
    first = group([scored("alice", 1, T), scored("alice", 2, T + 5), scored("bob", 3, T + 6, BURST, "medium", 0.6),
                   scored("alice", 4, T + 9), Scored("o", 5, "", "alice", "", 0.1, None, "m", None, T + 10)], states)
    assert [(u.incident.identity, u.activity, u.page, u.incident.findings) for u in first] == [
        ("alice", "create", True, 3), ("bob", "create", False, 1)]
    assert first[0].last.seq == 4 and first[0].incident.records == ["o#1", "o#2", "o#4"]
    # The state keeps the open incident (in its JSON form, through the state topic and back).
    states = {a: state_from_dict(orjson.loads(orjson.dumps(state_to_dict(s)))) for a, s in states.items()}
    again = group([scored("alice", 6, T + 60, (("prompt_injection", 0.95),), "critical", 0.95)], states)
    assert [(u.activity, u.page, u.incident.findings, u.incident.severity) for u in again] == [("update", False, 4, "critical")]
    assert again[0].incident.uid == first[0].incident.uid
    # After the quiet time: the old one closes and a new one, linked to it, opens and asks to page.
    later = group([scored("alice", 7, T + 60 + QUIET_S + 1)], states)
    assert [(u.activity, u.page) for u in later] == [("close", False), ("create", True)]
    assert later[1].incident.previous == later[0].incident.uid == first[0].incident.uid


def test_an_aborted_batch_leaves_the_held_incidents_as_they_were():
    held = {"alice": IdentityState()}
    group([scored("alice", 1, T)], held)
    before = state_to_dict(held["alice"])
    group([scored("alice", 2, T + 5)], BatchStates(held))  # never committed
    assert state_to_dict(held["alice"]) == before


def test_the_incident_finding_is_ocsf_2005_and_becomes_an_incidents_row():
    (u,) = group([scored("alice", 1, T), scored("alice", 2, T + 30)], {"alice": IdentityState()})
    f = ocsf(u)
    assert (f["class_uid"], f["activity_id"], f["type_uid"], f["status"], f["unmapped"]["page"]) == (2005, 1, 200501, "New", True)
    assert f["finding_info_list"][0]["uid"] == u.incident.uid and f["unmapped"]["chain"]["seq"] == 2
    assert f["start_time"] == int(T * 1000) and f["end_time"] == int((T + 30) * 1000)
    raw = orjson.dumps(f)
    row = dict(zip(table.COLUMNS, table.row(orjson.loads(raw), raw)))
    assert (row["incident_uid"], row["activity"], row["family"], row["findings"], row["page"]) == \
        (u.incident.uid, "create", "injection", 2, True)


@pytest.mark.parametrize("change", [
    {"class_uid": 2004}, {"severity": "Apocalyptic"}, {"unmapped": {"incident": {"uid": "x" * 65}}},
    {"time": -1}, {"activity_id": 9},
])
def test_a_hostile_incident_message_is_refused_by_the_row_parser(change):
    (u,) = group([scored("alice", 1, T)], {"alice": IdentityState()})
    f = ocsf(u)
    if "unmapped" in change:
        f["unmapped"]["incident"].update(change["unmapped"]["incident"])
    else:
        f.update(change)
    with pytest.raises((ValueError, KeyError, TypeError)):
        table.row(f, orjson.dumps(f))


def test_a_stored_incident_row_is_read_only_when_it_is_one():
    (u,) = group([scored("alice", 1, T)], {"alice": IdentityState()})
    good = orjson.dumps(ocsf(u)).decode()
    assert table.stored_incident(good)["unmapped"]["incident"]["uid"] == u.incident.uid
    bad = ocsf(u)
    bad["unmapped"]["chain"] = {"origin": ["x"], "seq": "1"}
    for raw in ("{not json", "[]", '{"class_uid": 2005}', orjson.dumps(bad).decode()):
        with pytest.raises(ValueError, match="not an incident update"):
            table.stored_incident(raw)
