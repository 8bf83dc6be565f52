"""Emitter signatures: what the SDK signs is what the chain worker decodes; every forgery named."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aiaudit.pipeline import contract
from aiaudit.pipeline.contract.emitter_keys import (
    emitter_keys_from,
    load_emitter_keys,
    load_emitter_signer,
    new_emitter_key,
    read_key_set,
    register_emitter_key,
    retire_emitter_key,
)
from aiaudit.pipeline.contract.signature import SIGNATURE_FIELD, signature_member, signed_message, speaks_for
from aiaudit.pipeline.emit.synthetic import SyntheticEvents
from aiaudit.pipeline.errors import SigningKeyError
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.schemas import earlier_event_schemas

MAX = 1 << 20


def events(n: int, emitter_id: str = "billing-1") -> list[dict]:
    gen = SyntheticEvents(9, datetime(2026, 11, 28, tzinfo=timezone.utc), emitter_id)
    return [{**gen.next_event(), "emitter_id": emitter_id, "emitter_seq": i} for i in range(n)]


@pytest.fixture
def keyset(tmp_path: Path):
    folder = tmp_path / "emitters"
    path, kid, _ = new_emitter_key(folder, "billing", folder / "jwks.json")
    signer, name = load_emitter_signer(path)
    assert name == "billing" and signer.kid == kid
    return signer, folder / "jwks.json"


def signed(signer: Ed25519Signer, event: dict) -> dict:
    data, _ = contract.encode_signed(event, lambda e: signature_member(signer, e), max_bytes=MAX)
    return contract.decode(data, max_bytes=MAX)


def test_signed_events_decode_to_what_was_signed_and_verify(keyset):
    signer, set_file = keyset
    keys = load_emitter_keys(set_file)
    for ev in events(50):
        decoded = signed(signer, ev)
        assert decoded[SIGNATURE_FIELD]["kid"] == signer.kid
        assert keys.problem(decoded) is None


def test_the_appended_signature_is_the_avro_encoding_of_the_whole_event(keyset):
    signer, _ = keyset
    ev = events(1)[0]
    data, member = contract.encode_signed(ev, lambda e: signature_member(signer, e), max_bytes=MAX)
    assert data == contract.encode({**ev, SIGNATURE_FIELD: member}, max_bytes=MAX)


def test_the_signed_bytes_are_the_domain_tag_and_the_jcs_of_the_event_without_its_signature(keyset):
    signer, set_file = keyset
    decoded = signed(signer, events(1)[0])
    body = {k: v for k, v in decoded.items() if k != SIGNATURE_FIELD}
    message = signed_message(decoded)
    assert message.startswith(b"aiaudit/event/v1\n")
    assert json.loads(message[len(b"aiaudit/event/v1\n"):]) == body
    sig = base64.urlsafe_b64decode(decoded[SIGNATURE_FIELD]["sig"] + "==")
    signer.private_key.public_key().verify(sig, message)  # raises when it does not verify (OpenSSL, not our checker)


def test_every_forgery_is_named(keyset, tmp_path: Path):
    signer, set_file = keyset
    keys = load_emitter_keys(set_file)
    good = signed(signer, events(1)[0])
    foreign = Ed25519Signer.generate()
    cases = {
        "no emitter signature": {**good, SIGNATURE_FIELD: None},
        "does not verify": {**good, "actor": {**good["actor"], "id": "mallory"}},
        "not 'payroll-1'": {**good, "emitter_id": "payroll-1"},
        "not in the emitter key set": signed(foreign, events(1)[0]),
        "not {kid, sig} strings": {**good, SIGNATURE_FIELD: {"kid": signer.kid, "sig": 7}},
        "64 bytes in base64url": {**good, SIGNATURE_FIELD: {"kid": signer.kid, "sig": "A" * 85 + "="}},
    }
    for expected, event in cases.items():
        assert expected in (keys.problem(event) or ""), expected
    # a signature moved to another event of the same emitter does not verify either
    other = {**signed(signer, events(2)[1]), SIGNATURE_FIELD: good[SIGNATURE_FIELD]}
    assert "does not verify" in keys.problem(other)
    # unsigned events pass only where signatures are optional
    assert emitter_keys_from(read_key_set(set_file), "set", required=False).problem(cases["no emitter signature"]) is None


def test_a_retired_key_is_refused_from_then_on_and_its_older_events_still_verify(keyset):
    signer, set_file = keyset
    event = signed(signer, events(1)[0])  # occurred 2026-11-28
    retire_emitter_key(set_file, signer.kid, "2026-11-28T12:00:00Z")
    keys = load_emitter_keys(set_file)
    assert keys.problem(event) is None  # a verifier judges by the event's time
    assert "not valid at" in keys.problem(event, at="2026-11-29T00:00:00.000000Z")  # the chain worker by its clock


def test_names_speak_only_for_their_own_emitter_ids():
    assert speaks_for("billing", "billing") and speaks_for("billing", "billing-7") and speaks_for("billing", "billing/a")
    assert not speaks_for("billing", "billingx") and not speaks_for("billing", "billin")
    assert not speaks_for("billing", "billing_7") and not speaks_for("billing", "")


def test_hostile_key_sets_are_refused_with_the_reason(tmp_path: Path):
    signer = Ed25519Signer.generate()
    jwk = {**signer.jwk(), "emitter": "billing"}
    bad = {
        "a 'keys' array": [1, 2],
        "not an Ed25519 public JWK": {"keys": [{**jwk, "kty": "RSA"}]},
        "needs an 'emitter' name": {"keys": [{**jwk, "emitter": "bill ing"}]},
        "overlap": {"keys": [jwk, {**Ed25519Signer.generate().jwk(), "emitter": "billing-eu"}]},
        "thumbprint": {"keys": [{**jwk, "kid": "A" * 43}]},
        "RFC 3339": {"keys": [{**jwk, "not_after": "yesterday"}]},
    }
    for expected, doc in bad.items():
        with pytest.raises(SigningKeyError, match=expected):
            emitter_keys_from(doc, "set")  # type: ignore[arg-type]
    path = tmp_path / "jwks.json"
    path.write_text("{not json")
    with pytest.raises(SigningKeyError, match="not JSON"):
        load_emitter_keys(path)
    with pytest.raises(SigningKeyError, match="aiaudit keys emitter new NAME"):
        load_emitter_keys(tmp_path / "missing.json")


def test_registration_refuses_a_name_that_overlaps_and_writes_no_key_for_it(tmp_path: Path):
    folder = tmp_path / "emitters"
    new_emitter_key(folder, "billing", folder / "jwks.json")
    with pytest.raises(SigningKeyError, match="overlap"):
        new_emitter_key(folder, "billing-eu", folder / "jwks.json")
    assert [p.name.split(".")[0] for p in folder.glob("*.key")] == ["billing"]
    other = Ed25519Signer.generate().jwk()
    register_emitter_key(folder / "jwks.json", "payroll", other)
    with pytest.raises(SigningKeyError, match="already registered for emitter 'payroll'"):
        register_emitter_key(folder / "jwks.json", "ledger", other)


def test_events_of_the_previous_schema_version_still_decode(keyset):
    import io

    import fastavro
    old = fastavro.parse_schema(earlier_event_schemas()[-1])
    ev = events(1)[0]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, old, ev)
    data = b"\xc3\x01" + contract.fingerprint(old) + buf.getvalue()
    decoded = contract.decode(data, max_bytes=MAX)
    assert decoded[SIGNATURE_FIELD] is None and decoded["event_id"] == ev["event_id"]


@pytest.mark.parametrize("content", [
    bytes(range(256)) * 4,                          # binary: not UTF-8
    b'{"keys": [{"kty": "OKP", "crv": "Ed25519", ',  # truncated
    b'{"keys": {"not": "a list"}}',                  # wrong shape
    b'[1, 2, 3]',
    b'{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "emitter": "e"}]}',
    b" " * ((1 << 20) + 10),                         # over the size bound
    b"",
])
def test_a_corrupt_key_set_never_stops_the_worker_the_last_good_set_stays(keyset, content, caplog):
    """A running chain worker rereads the set when it changes: whatever the file now holds, the
    last good set stays in force and the change is logged once (not once per batch)."""
    import os

    from aiaudit.pipeline.contract.emitter_keys import EmitterKeysFile

    signer, set_file = keyset
    watched = EmitterKeysFile(set_file, required=True)
    good = watched.current()
    assert good is not None and signer.kid in good.names
    set_file.write_bytes(content)
    os.utime(set_file, ns=(1, 1))  # a changed stamp whatever the clock's resolution
    caplog.clear()
    for _ in range(3):
        assert watched.current() is good
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and str(set_file) in errors[0].getMessage()


def test_a_binary_key_set_is_refused_by_name_not_with_a_traceback(tmp_path):
    path = tmp_path / "jwks.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SigningKeyError, match="not UTF-8"):
        read_key_set(path)
