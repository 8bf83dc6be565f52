"""Analysts' signatures on status changes (pure): who acted is proven by their key; a change
written by anyone else, or re-attributed, or signed by a retired key, is refused with a reason."""

from __future__ import annotations

import pytest

from aiaudit.pipeline.contract.analysts import AnalystKeys, StatusSigner, parse_analyst_key_set
from aiaudit.pipeline.errors import SigningKeyError
from aiaudit.pipeline.keys import Ed25519Signer, KeyRing
from aiaudit.pipeline.store.alerts import status_message

ALICE, MALLORY, CONSOLE = Ed25519Signer.generate(), Ed25519Signer.generate(), Ed25519Signer.generate()
AT = "2026-11-29T08:00:00.000000Z"


def keys(*, retired: str | None = None) -> AnalystKeys:
    alice = {**ALICE.jwk(), **({"not_after": retired} if retired else {})}
    ring = KeyRing.from_jwks({"keys": [alice, CONSOLE.jwk()]})
    return AnalystKeys({ALICE.kid: ("alice@acme.example", False), CONSOLE.kid: ("soc-console", True)}, ring)


def change(**kw):
    from datetime import datetime, timezone

    return {**status_message("uid-1", "resolved", "x", "done", datetime(2026, 11, 29, 8, tzinfo=timezone.utc)), **kw}


def test_a_change_signed_by_the_analyst_it_names_is_accepted():
    signed = StatusSigner(ALICE, "alice@acme.example").sign(change())
    assert signed["by"] == "alice@acme.example" and keys().problem(signed, at=AT) is None


def test_the_console_signs_for_the_person_signed_in_and_says_so():
    signed = StatusSigner(CONSOLE, "soc-console", console=True).sign(change(), by="bob@acme.example")
    assert (signed["by"], signed["via"]) == ("bob@acme.example", "soc-console")
    assert keys().problem(signed, at=AT) is None
    assert "does not say" in keys().problem({**signed, "via": "elsewhere"}, at=AT)
    with pytest.raises(SigningKeyError):
        StatusSigner(CONSOLE, "soc-console", console=True).sign(change())  # for whom?


@pytest.mark.parametrize("mutate, reason", [
    (lambda c: {k: v for k, v in c.items() if k != "signature"}, "no analyst signature"),
    (lambda c: {**c, "by": "soc-lead@acme.example"}, "belongs to"),  # re-attributed
    (lambda c: {**c, "status": "open"}, "does not verify"),  # edited after signing
    (lambda c: {**c, "via": "soc-console"}, "belongs to"),  # an analyst key posing as the console
    (lambda c: {**c, "signature": "x"}, "not {kid, sig}"),
    (lambda c: {**c, "signature": {"kid": "k" * 43, "sig": "s" * 86}}, "not in the analyst key set"),
    (lambda c: {**c, "signature": {"kid": c["signature"]["kid"], "sig": "A" * 85}}, "64 bytes"),
    (lambda c: ["not", "an", "object"], "JSON object"),
])
def test_a_change_not_signed_by_the_analyst_it_names_is_refused(mutate, reason):
    signed = StatusSigner(ALICE, "alice@acme.example").sign(change())
    problem = keys().problem(mutate(signed), at=AT)
    assert problem is not None and reason in problem, problem


def test_a_key_of_another_analyst_cannot_sign_in_their_name():
    forged = StatusSigner(MALLORY, "alice@acme.example").sign(change())  # mallory's key, alice's name
    assert "not in the analyst key set" in keys().problem(forged, at=AT)
    with pytest.raises(SigningKeyError):
        StatusSigner(ALICE, "alice@acme.example").sign(change(), by="bob@acme.example")


def test_a_retired_key_signs_nothing_after_its_end_and_its_earlier_changes_stand():
    signed = StatusSigner(ALICE, "alice@acme.example").sign(change())
    retired = keys(retired="2026-11-29T09:00:00Z")
    assert retired.problem(signed, at=AT) is None
    assert "not valid" in retired.problem(signed, at="2026-11-29T10:00:00.000000Z")


@pytest.mark.parametrize("doc", [
    [], {"keys": {}}, {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "a" * 43}]},
    {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "a" * 43, "analyst": "a", "console": "b"}]},
    {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "a" * 43, "analyst": "has space"}]},
    {"keys": [{"kty": "RSA", "analyst": "a"}]},
    {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "a" * 43, "analyst": "a", "not_after": 5}]},
])
def test_a_malformed_analyst_key_set_is_refused_naming_the_problem(doc):
    with pytest.raises(SigningKeyError):
        parse_analyst_key_set(doc, "set")
