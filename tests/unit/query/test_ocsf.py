"""A request record as an OCSF 1.8.0 API Activity event: valid under that version's schema (the
schema as the ocsf-json-schema package ships it, with the AI Operation and Data Classification
profiles), and carrying the signed payload verbatim with the record's integrity fields."""

from __future__ import annotations

import hashlib
import json

import jsonschema
import pytest
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.query.ocsf import OCSF_VERSION, PROFILES, api_activity
from aiaudit.pipeline.store import evidence
from tests.unit.helpers import build_chain


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION)).get_class_schema(
        class_name="api_activity", profiles=PROFILES)
    return jsonschema.Draft202012Validator(schema)


def rows(n: int = 6) -> list[dict]:
    return [dict(zip(evidence.COLUMNS, evidence.row(rec))) for rec in build_chain(n, Ed25519Signer.generate())]


def test_every_record_is_a_valid_api_activity_event_of_the_schema(validator):
    for row in rows():
        event = api_activity(row, product_version="0.1.0")
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(event)]
        assert errors == [], errors
    broken = api_activity(rows(1)[0], product_version="0.1.0")
    del broken["api"]
    assert not validator.is_valid(broken)  # the schema does bite: a required attribute missing,
    assert not validator.is_valid({**api_activity(rows(1)[0], product_version="0.1.0"), "prompt": "x"})  # or one OCSF lacks


def test_the_event_carries_the_signed_payload_and_the_integrity_fields():
    row = rows(1)[0]
    event = api_activity(row, product_version="0.1.0")
    signed = json.loads(row["payload"])
    assert event["raw_data"] == row["payload"]  # the signed bytes, verbatim
    assert event["raw_data_hash"]["value"] == hashlib.sha256(row["payload"].encode()).hexdigest()
    assert event["unmapped"]["aiaudit"] == {"origin": row["origin"], "seq": row["seq"], "leaf_hash": row["leaf_hash"],
                                            "sig": row["sig"], "kid": row["kid"], "record_format": signed["v"]}
    ev = signed["event"]
    assert event["actor"]["user"]["uid"] == ev["actor"]["id"] and event["metadata"]["uid"] == ev["event_id"]
    assert event["actor"]["authorizations"][0]["policy"]["version"] == ev["policy_version"]
    assert event["ai_model"]["name"] == ev["gen_ai_request_model"]
    assert event["status_id"] == (2 if ev["decision"] == "deny" else 1)
    found = event["resources"][0]["data_classifications"]
    if ev["prompt_classification"]["categories"]:
        assert [c["classifier_details"]["name"] for c in found] == ev["prompt_classification"]["categories"]
    else:
        assert [c["category_id"] for c in found] == [0]

