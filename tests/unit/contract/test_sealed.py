"""Content sealed under its subjects' keys and its record's (pure), and the key folder it lives in:
destroying any one key leaves nothing that opens it."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from aiaudit.pipeline.contract.erasure import erasure_message, shape_problem
from aiaudit.pipeline.contract.sealed import content_key, key_id, open_sealed, seal
from aiaudit.pipeline.contract.subject_keys import SubjectKeys
from aiaudit.pipeline.errors import ConfigError

CONTENT = {"key_b64": "AAAA", "prompt": "mail carol the figures", "response": "done"}


def test_the_content_opens_only_with_every_key_it_was_sealed_under():
    alice, agent, record = os.urandom(32), os.urandom(32), os.urandom(32)
    box = seal(content_key([alice, agent], record, "e1"), "e1", CONTENT)
    assert "carol" not in box
    assert open_sealed(content_key([alice, agent], record, "e1"), "e1", box) == CONTENT
    for keys, rec, event in (([alice], record, "e1"), ([alice, os.urandom(32)], record, "e1"),
                             ([alice, agent], os.urandom(32), "e1"), ([alice, agent], record, "e2"),
                             ([agent, alice], record, "e1")):
        with pytest.raises(ValueError, match="does not open"):
            open_sealed(content_key(keys, rec, event), event, box)


@pytest.mark.parametrize("box", ["", "!!!", "QUFB", "A" * 100])
def test_hostile_sealed_text_is_a_clear_error(box):
    with pytest.raises(ValueError):
        open_sealed(os.urandom(32), "e1", box)


def test_destroying_a_subject_or_a_record_key_leaves_the_content_unopenable(tmp_path):
    keys = SubjectKeys(tmp_path / "ck")
    box, ids = keys.seal("e1", ("alice", "agent-7"), "2027-01-01T00:00:00+00:00", CONTENT)
    assert set(ids) == {"alice", "agent-7", "record"} and keys.record_subjects("e1") == ["alice", "agent-7"]
    assert keys.open("e1", ["alice", "agent-7"], ids, box) == CONTENT
    other, other_ids = keys.seal("e2", ("bob",), "2027-01-01T00:00:00+00:00", CONTENT)
    assert keys.erase_subject("alice") == ids["alice"]
    assert keys.open("e1", ["alice", "agent-7"], ids, box) == ["alice"]
    assert keys.open("e2", ["bob"], other_ids, other) == CONTENT  # nobody else's content goes
    keys.seal("e3", ("alice",), "2027-01-01T00:00:00+00:00", CONTENT)  # alice's next request: a new key
    assert keys.open("e1", ["alice", "agent-7"], ids, box) == ["alice"]  # which never opens the old content
    assert keys.erase_record("e2") == other_ids["record"] and keys.open("e2", ["bob"], other_ids, other) == ["record"]
    # What is left: the keys of e1 and e3, and of alice (her new one), agent-7 and bob.
    assert keys.records.count() == 2
    assert len(list((tmp_path / "ck" / "subjects").iterdir())) == 3


def test_record_keys_expire_by_their_time(tmp_path):
    keys = SubjectKeys(tmp_path / "ck")
    keys.seal("old", ("a",), "2026-01-01T00:00:00+00:00", CONTENT)
    keys.seal("new", ("a",), "2027-01-01T00:00:00+00:00", CONTENT)
    keys.seal("older", ("b",), "2025-12-31T23:00:00-02:00", CONTENT)  # 2026-01-01 01:00 UTC: after "old"
    assert list(keys.expired(datetime(2026, 6, 1, tzinfo=timezone.utc))) == [
        ("old", "2026-01-01T00:00:00+00:00"), ("older", "2025-12-31T23:00:00-02:00")]
    with pytest.raises(ValueError, match="time zone"):
        keys.seal("naive", ("a",), "2027-01-01T00:00:00", CONTENT)


def test_a_key_folder_open_to_others_is_refused(tmp_path):
    folder = tmp_path / "ck"
    SubjectKeys(folder)
    folder.chmod(0o755)
    with pytest.raises(ConfigError, match="chmod 700"):
        SubjectKeys(folder)


def test_holds_are_kept_and_lifted(tmp_path):
    keys = SubjectKeys(tmp_path / "ck")
    keys.set_hold("alice", {"at": "t", "by": "legal", "reason": "case 12"})
    assert keys.holds() == {"alice": {"at": "t", "by": "legal", "reason": "case 12"}}
    keys.set_hold("alice", None)
    assert keys.holds() == {}


def test_key_ids_name_keys_without_revealing_them():
    k = os.urandom(32)
    assert key_id(k) == key_id(k) and len(key_id(k)) == 16 and k.hex()[:16] != key_id(k)


AT = datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("over,field", [({"subject": None}, "exactly one"), ({"event_id": "e1"}, "exactly one"),
                                        ({"action": "delete"}, "action"), ({"reason": " "}, "reason"),
                                        ({"key_ids": ["zz"]}, "key_ids"), ({"by": ""}, "by")])
def test_erasure_records_out_of_shape_are_named(over, field):
    good = {**erasure_message(action="erase", subject="alice", reason="Art. 17 request 42", key_ids=[], at=AT),
            "by": "dpo"}
    assert shape_problem(good) is None
    assert field in (shape_problem({**good, **over}) or "")
