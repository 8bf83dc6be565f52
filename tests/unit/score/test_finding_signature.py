"""Findings signed by the scoring worker: what the delivery agent accepts, and every forgery refused."""

from __future__ import annotations

import copy

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline.score.finding_signature import HEADER, from_headers, header_value, sign_finding, signature_problem
from tests.unit.deliver.findings import finding

KEY = Ed25519PrivateKey.generate()
PINNED = [KEY.public_key().public_bytes_raw()]


def test_a_signed_finding_verifies_after_a_json_round_trip_and_from_its_headers():
    f = finding()
    sig = sign_finding(f, KEY)
    again = orjson.loads(orjson.dumps(f))
    assert signature_problem(again, from_headers([(HEADER, header_value(sig))]), PINNED) is None
    assert signature_problem(again, from_headers({HEADER: header_value(sig)}), PINNED) is None


@pytest.mark.parametrize("forge, why", [
    (lambda f, s: (f, None), "unsigned"),
    (lambda f, s: ({**f, "severity": "critical"}, s), "does not verify"),
    (lambda f, s: (f, {**s, "sig": s["sig"][:-4] + "AAA="}), "does not verify"),
    (lambda f, s: (f, sign_finding(f, Ed25519PrivateKey.generate())), "not a pinned"),
    (lambda f, s: (f, {"key": s["key"]}), "malformed"),
    (lambda f, s: (f, {"key": "!!", "sig": "??"}), "malformed"),
    (lambda f, s: (f, "text"), "malformed"),
    (lambda f, s: (f, {**s, "sig": "A" * 500}), "malformed"),
])
def test_every_forgery_is_refused_with_a_reason(forge, why):
    f = finding()
    bad, sig = forge(copy.deepcopy(f), sign_finding(f, KEY))
    assert why in signature_problem(bad, sig, PINNED)


def test_hostile_headers_never_raise():
    for headers in (None, [], [(HEADER, b"\xff")], [(HEADER, None)], [(HEADER, b"x" * 10_000)], {"other": b"1"}):
        assert signature_problem(finding(), from_headers(headers), PINNED) is not None
