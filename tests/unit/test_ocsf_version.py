"""Every OCSF event aiaudit sends is of one OCSF version and valid under that version's schema
with the profiles it declares (the schema as the ocsf-json-schema package ships it): request
events, Detection Findings (model and rule), Incident Findings (create, update, close) and the
paging digest."""

from __future__ import annotations

import jsonschema
import pytest
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from aiaudit.detectors.features import IdentityState
from aiaudit.detectors.rules import RuleHit
from aiaudit.pipeline.deliver.pages import digest_finding
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.ocsf import OCSF_VERSION
from aiaudit.pipeline.query.ocsf import api_activity
from aiaudit.pipeline.score.incidents import group
from aiaudit.pipeline.score.ocsf import detection_finding, incident_finding
from aiaudit.pipeline.store import evidence
from tests.unit.helpers import build_chain
from tests.unit.score.test_incidents import T, scored

CLASSES = {6003: "api_activity", 2004: "detection_finding", 2005: "incident_finding"}
SCHEMA = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))


def _errors(event: dict) -> list[str]:
    assert event["metadata"]["version"] == OCSF_VERSION
    schema = SCHEMA.get_class_schema(class_name=CLASSES[event["class_uid"]], profiles=event["metadata"].get("profiles", []))
    return [f"{list(e.path)}: {e.message[:200]}" for e in jsonschema.Draft202012Validator(schema).iter_errors(event)]


def _findings() -> list[dict]:
    event = {"actor": {"id": "alice@acme.example", "type": "workforce", "on_behalf_of": None}, "decision": "allow",
             "event_id": "e1", "occurred_at": "2026-11-29T10:00:00.000000Z", "gen_ai_provider_name": "openai",
             "gen_ai_request_model": "gpt-4o", "route": "chat"}
    common = dict(origin="acme/prod/ai.requests/p1/g1", seq=42, leaf_hash="ab" * 32, event=event, score=0.41,
                  detected_at_ms=1_795_950_000_123)
    return [detection_finding(**common, severity="high", explanation=[("prompt_chars", 3.2)], model_version="m1",
                              model_severity="high", model_score=0.7),
            detection_finding(**common, severity="medium", explanation=[], model_version="m1",
                              rule_hits=[RuleHit("request_burst", "medium", "40 in a minute")])]


def _incidents(last: dict) -> list[dict]:
    states = {"alice": IdentityState()}
    out = []
    for u in group([scored("alice", 1, T), scored("alice", 2, T + 5)], states):
        for activity in ("create", "update", "close"):
            out.append(incident_finding(incident=u.incident, activity=activity, page=activity == "create", last=last,
                                        detected_at_ms=int(T * 1000), rules_version="r2", model_version="m1"))
    return out


def test_every_kind_of_ocsf_event_is_valid_under_the_one_version():
    findings = _findings()
    events = [*findings, *_incidents(findings[1]),
              digest_finding("acme", 20_430, [{"uid": "i1", "severity": "high", "family": "misuse",
                                               "identity": "bob", "findings": 3}], now_ms=int(T * 1000)),
              *(api_activity(dict(zip(evidence.COLUMNS, evidence.row(rec))), product_version="0.1.0")
                for rec in build_chain(3, Ed25519Signer.generate()))]
    assert {e["class_uid"] for e in events} == {6003, 2004, 2005}
    for event in events:
        assert _errors(event) == [], (event["class_uid"], _errors(event))


@pytest.mark.parametrize("breaks", [
    lambda f: f["metadata"].update(profiles=[]),  # actor is the host profile's
    lambda f: f.pop("finding_info"),
    lambda f: f.update(is_breach=True),
])
def test_the_schema_bites_on_a_finding(breaks):
    finding = _findings()[1]
    breaks(finding)
    assert _errors(finding) != []


def test_an_incident_without_its_assignee_group_is_not_valid():
    incident = _incidents(_findings()[1])[0]
    del incident["assignee_group"]
    assert _errors(incident) != []
