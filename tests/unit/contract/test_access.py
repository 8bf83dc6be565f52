"""Access records (pure): their shape, their signature under its own domain, who may sign for whom."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from aiaudit.pipeline.chain.kinds import BY_NAME
from aiaudit.pipeline.contract.access import MAX_WHAT_CHARS, access_message, digest_of, shape_problem
from aiaudit.pipeline.contract.analysts import (
    ACCESS_SIG_DOMAIN,
    SIGNED_KINDS,
    STATUS_SIG_DOMAIN,
    AnalystKeys,
    StatusSigner,
    signed_message_problem,
)
from aiaudit.pipeline.errors import SigningKeyError
from aiaudit.pipeline.keys import Ed25519Signer, KeyRing

AT = datetime(2026, 12, 4, 9, 30, 1, 234567, tzinfo=timezone.utc)
ALICE, CONSOLE = Ed25519Signer.generate(), Ed25519Signer.generate()
KEYS = AnalystKeys({ALICE.kid: ("alice@acme.example", False), CONSOLE.kid: ("local-reader", True)},
                   KeyRing.from_jwks({"keys": [ALICE.jwk(), CONSOLE.jwk()]}))


def _body(**over):
    return {**access_message(op="export", what="SELECT 1", rows=3, digest=digest_of([(1,), (2,), (3,)])[1],
                             outcome="served", host="host-1", at=AT), **over}


def _check(doc) -> str | None:
    return signed_message_problem("access", orjson.dumps(doc), KEYS, at="2026-12-04T09:30:02Z")


def test_the_signed_kinds_are_chain_kinds():
    assert set(SIGNED_KINDS) <= set(BY_NAME)


def test_an_analyst_signs_for_herself_and_a_console_for_whom_it_serves():
    mine = StatusSigner(ALICE, "alice@acme.example").sign(_body(), domain=ACCESS_SIG_DOMAIN)
    assert mine["by"] == "alice@acme.example" and "via" not in mine and _check(mine) is None
    served = StatusSigner(CONSOLE, "local-reader", console=True).sign(_body(), by="local:root", domain=ACCESS_SIG_DOMAIN)
    assert served["by"] == "local:root" and served["via"] == "local-reader" and _check(served) is None
    assert shape_problem({k: v for k, v in served.items() if k != "signature"}) is None
    with pytest.raises(SigningKeyError):
        StatusSigner(ALICE, "alice@acme.example").sign(_body(), by="bob", domain=ACCESS_SIG_DOMAIN)


def test_a_record_changed_after_signing_or_signed_for_another_domain_is_refused():
    signer = StatusSigner(ALICE, "alice@acme.example")
    good = signer.sign(_body(), domain=ACCESS_SIG_DOMAIN)
    assert "does not verify" in _check({**good, "rows": 0})  # fewer rows claimed than were served
    assert "does not verify" in _check({**good, "by": "bob@acme.example"}) or "belongs to" in _check(
        {**good, "by": "bob@acme.example"})
    as_status = signer.sign(_body(), domain=STATUS_SIG_DOMAIN)  # a status-change signature is not an access one
    assert "does not verify" in _check(as_status)
    assert "no analyst signature" in _check(_body(by="alice@acme.example"))
    stranger = StatusSigner(Ed25519Signer.generate(), "alice@acme.example").sign(_body(), domain=ACCESS_SIG_DOMAIN)
    assert "not in the analyst key set" in _check(stranger)


@pytest.mark.parametrize("raw", [b"", b"[]", b"not json", b'{"signature": 1}', b"x" * 20_000,
                                 orjson.dumps({"signature": {"kid": "A" * 43, "sig": "B" * 86}})])
def test_hostile_messages_get_a_reason_never_an_exception(raw):
    problem = signed_message_problem("access", raw, KEYS, at="2026-12-04T09:30:02Z")
    assert isinstance(problem, str) and problem
    assert signed_message_problem("access", raw, None, at="2026-12-04T09:30:02Z").startswith("no analyst key set")


@pytest.mark.parametrize("field,value", [("rows", -1), ("rows", "3"), ("op", "Drop Table"), ("digest", "md5:00"),
                                         ("at", "2026-12-04 09:30"), ("outcome", "maybe"), ("by", ""),
                                         ("what", "x" * (MAX_WHAT_CHARS + 1)), ("id", "../../etc"), ("v", 2)])
def test_fields_out_of_shape_are_named(field, value):
    problem = shape_problem({**_body(), "by": "alice", field: value})
    assert problem is not None and field in problem


def test_a_long_statement_is_cut_and_its_whole_text_digested():
    long = "SELECT " + ", ".join(f"c{i}" for i in range(3000))
    body = access_message(op="sql", what=long, rows=0, digest=digest_of([])[1], outcome="served", host="h", at=AT)
    assert len(body["what"]) <= MAX_WHAT_CHARS and body["what"].endswith(f"({len(long):,} characters)")
    assert body["at"] == "2026-12-04T09:30:01.234Z" and len(body["what_sha256"]) == 64


def test_the_digest_is_of_the_rows_in_order_with_their_types():
    a = digest_of([(b"\x00", AT, ("x", "y"), 7)])
    assert a == digest_of([[b"\x00", AT, ["x", "y"], 7]])  # a tuple served as a list is the same row
    assert a != digest_of([("\x00", AT, ("x", "y"), 7)])  # bytes are not the text they spell
    assert digest_of([(1,), (2,)]) != digest_of([(2,), (1,)])
    assert digest_of([])[0] == 0
