"""Record keys as rows of one SQLite database (pipeline/contract/record_keys.py), on a real file: an
erased key's bytes are gone from the database and its log, rows out of shape are refused, what
releases before kept as files still opens, expires and erases, and two processes' views agree."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aiaudit.pipeline.contract.record_keys import FILE_NAME, RecordKeys
from aiaudit.pipeline.contract.sealed import key_id
from aiaudit.pipeline.contract.subject_keys import Sealing, SubjectKeys, _name
from aiaudit.pipeline.errors import ConfigError

LATER = "2027-01-01T00:00:00+00:00"


def _on_disk(folder: Path) -> bytes:
    """Every byte of the database and its write-ahead log, as a disk image would hold them."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith(FILE_NAME))


def test_an_erased_record_key_is_gone_from_the_database_and_its_log(tmp_path):
    keys = SubjectKeys(tmp_path / "ck")
    for n in range(20):  # neighbours on the same page, which must survive
        keys.seal(f"e{n}", ("alice",), LATER, {"prompt": str(n)})
    key = keys.record_key("e7")
    assert key is not None and key in _on_disk(tmp_path / "ck")
    assert keys.erase_record("e7") == key_id(key)
    assert key not in _on_disk(tmp_path / "ck") and keys.record_key("e7") is None
    assert keys.records.count() == 19 and keys.record_key("e8") is not None
    assert (tmp_path / "ck" / FILE_NAME).stat().st_mode & 0o777 == 0o600
    assert keys.erase_record("e7") is None  # again: nothing left to destroy


@pytest.mark.parametrize("column,value", [("key", b"short"), ("key", "text, not bytes"),
                                          ("subjects", "not json"), ("subjects", '{"a": 1}'), ("subjects", "[1, 2]"),
                                          ("expires_at", b"\x00")])
def test_a_stored_row_out_of_shape_is_a_clear_error(tmp_path, column, value):
    keys = SubjectKeys(tmp_path / "ck")
    keys.seal("e1", ("alice",), LATER, {"prompt": "p"})
    with sqlite3.connect(tmp_path / "ck" / FILE_NAME) as db:
        db.execute(f"UPDATE record_keys SET {column} = ? WHERE event_id = 'e1'", (value,))
    with pytest.raises(ConfigError, match="is not a record key"):
        SubjectKeys(tmp_path / "ck").record_key("e1")


def test_a_store_of_a_newer_release_is_refused_not_rewritten(tmp_path):
    keys = SubjectKeys(tmp_path / "ck")
    keys.seal("e1", ("alice",), LATER, {"prompt": "p"})
    with sqlite3.connect(tmp_path / "ck" / FILE_NAME) as db:
        db.execute("PRAGMA user_version = 9")
    with pytest.raises(ConfigError, match="newer aiaudit"):
        SubjectKeys(tmp_path / "ck").record_key("e1")


def test_a_file_that_is_not_the_database_is_a_clear_error(tmp_path):
    folder = tmp_path / "ck"
    SubjectKeys(folder)
    (folder / FILE_NAME).write_bytes(b"not a database, " * 512)
    with pytest.raises(ConfigError, match="record keys cannot be opened"):
        SubjectKeys(folder).record_key("e1")


def test_hostile_arguments_are_refused_before_anything_is_stored(tmp_path):
    store = RecordKeys(tmp_path)
    for event_id, expires in (("", LATER), ("x" * 257, LATER), ("e1", "tomorrow"), ("e1", "2027-01-01T00:00:00")):
        with pytest.raises(ValueError):
            store.make(event_id, expires, ("alice",), "now")
    assert store.count() == 0


def test_record_key_files_of_earlier_releases_still_open_expire_and_erase(tmp_path):
    old = os.urandom(32)
    (tmp_path / "ck" / "records").mkdir(mode=0o700, parents=True)
    (tmp_path / "ck").chmod(0o700)
    path = tmp_path / "ck" / "records" / _name("legacy-1")  # as releases before 2026-12-05 wrote it
    path.write_text(json.dumps({"event_id": "legacy-1", "expires_at": "2026-01-01T00:00:00+00:00",
                                "subjects": ["carol"], "key": base64.b64encode(old).decode()}))
    keys = SubjectKeys(tmp_path / "ck")  # a folder an earlier release used
    keys.seal("new-1", ("carol",), "2026-02-01T00:00:00+00:00", {"prompt": "p"})
    assert keys.record_key("legacy-1") == old and keys.record_subjects("legacy-1") == ["carol"]
    assert keys.record_key("legacy-1", expires_at=LATER) == old  # sealing again uses it, never a second key
    assert list(keys.expired(datetime(2026, 6, 1, tzinfo=timezone.utc))) == [
        ("legacy-1", "2026-01-01T00:00:00+00:00"), ("new-1", "2026-02-01T00:00:00+00:00")]
    assert keys.erase_record("legacy-1") == key_id(old) and not path.exists()
    assert list(keys.expired(datetime(2026, 6, 1, tzinfo=timezone.utc))) == [("new-1", "2026-02-01T00:00:00+00:00")]


def test_expiry_lists_every_row_past_its_time_across_pages(tmp_path, monkeypatch):
    monkeypatch.setattr("aiaudit.pipeline.contract.record_keys.EXPIRED_PAGE", 7)
    keys = SubjectKeys(tmp_path / "ck")
    with keys.batch() as batch:
        for n in range(40):
            keys.seal(f"e{n}", ("a",), f"2026-01-{n % 28 + 1:02d}T00:00:00+00:00", {"prompt": ""}, batch)
    now = datetime(2026, 1, 10, tzinfo=timezone.utc)
    due = [e for e, _ in keys.expired(now)]
    assert sorted(due) == sorted(f"e{n}" for n in range(40) if n % 28 + 1 <= 10) and len(due) == len(set(due))
    for event_id in due[:5]:  # destroyed while listing (as `aiaudit erase --expired` does): the rest still come
        keys.erase_record(event_id)
    assert sorted(e for e, _ in keys.expired(now)) == sorted(due[5:])


def test_two_processes_views_share_one_key_a_record_and_an_erased_subject_key_is_not_reused(tmp_path):
    gateway, erase = SubjectKeys(tmp_path / "ck"), SubjectKeys(tmp_path / "ck")
    box, ids = gateway.seal("e1", ("alice",), LATER, {"prompt": "p"})
    assert erase.record_key("e1", expires_at=LATER) == gateway.record_key("e1")  # made once, found by the other
    assert erase.erase_subject("alice") == ids["alice"]
    _, again = gateway.seal("e2", ("alice",), LATER, {"prompt": "q"})  # the gateway had alice's key in memory
    assert again["alice"] != ids["alice"] and erase.open("e1", ["alice"], ids, box) == ["alice"]


def test_keys_made_together_across_statements_one_a_record_and_a_bad_job_alone_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("aiaudit.pipeline.contract.record_keys.INSERT_ROWS", 4)  # several statements
    keys = SubjectKeys(tmp_path / "ck")
    keys.seal("e3", ("alice",), LATER, {"prompt": "made before"})
    jobs = [Sealing(f"e{n}", ("alice",), LATER, {"prompt": str(n)}) for n in range(10)]
    jobs += [Sealing("e5", ("alice",), LATER, {"prompt": "again"}), Sealing("bad", ("x" * 300,), LATER, {})]
    with keys.batch() as batch:
        done = keys.seal_many(jobs, batch)
    assert isinstance(done[-1], ValueError) and keys.record_key("bad") is None
    assert done[3][1]["record"] == key_id(keys.record_key("e3"))  # the key made before stands
    assert done[5][1]["record"] == done[10][1]["record"]  # one key a record, however often it is sealed
    for job, (box, ids) in zip(jobs[:11], done[:11]):
        assert keys.open(job.event_id, ["alice"], ids, box) == job.content
    assert keys.records.count() == 10
