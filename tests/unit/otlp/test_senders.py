"""The receiver's senders and what it remembers (pipeline/otlp/senders.py, seen.py)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.otlp import senders as senders_module
from aiaudit.pipeline.otlp.seen import Seen
from aiaudit.pipeline.otlp.senders import Senders


@pytest.fixture(autouse=True)
def _no_reload_delay(monkeypatch):
    monkeypatch.setattr(senders_module, "RELOAD_EVERY_S", 0.0)


def test_a_token_authenticates_its_sender_only_and_is_never_stored(tmp_path):
    s = Senders(tmp_path / "senders.json")
    a, b = s.add("shop-app"), s.add("billing")
    assert s.authenticate(f"Bearer {a}") == "shop-app" and s.authenticate(f"bearer {b}") == "billing"
    text = (tmp_path / "senders.json").read_text()
    assert a not in text and b not in text
    assert stat.S_IMODE(os.stat(tmp_path / "senders.json").st_mode) == 0o600
    for hostile in (None, "", "Bearer", f"Basic {a}", f"Bearer {a}x", "Bearer aiot_", a, "Bearer " + "aiot_" + "x" * 5000):
        assert s.authenticate(hostile) is None, hostile
    s.remove("shop-app")
    assert s.authenticate(f"Bearer {a}") is None and s.authenticate(f"Bearer {b}") == "billing"


def test_names_are_checked_and_a_replaced_token_stops_the_old_one(tmp_path):
    s = Senders(tmp_path / "senders.json")
    for bad in ("", "Shop", "a b", "../x", "x" * 65, "-x"):
        with pytest.raises(ConfigError):
            s.add(bad)
    old = s.add("shop")
    with pytest.raises(ConfigError, match="exists"):
        s.add("shop")
    new = s.add("shop", replace=True)
    assert s.authenticate(f"Bearer {old}") is None and s.authenticate(f"Bearer {new}") == "shop"
    assert [r["name"] for r in s.listed()] == ["shop"]


def test_a_file_that_is_not_a_senders_file_is_an_error_not_an_open_door(tmp_path):
    path = tmp_path / "senders.json"
    path.write_text(json.dumps({"version": 1, "senders": {"x": {"sha256": "not-hex"}, "Bad Name": {"sha256": "a" * 64}}}))
    s = Senders(path)
    assert s.names() == []  # entries out of shape are ignored
    path.write_text("[]")
    with pytest.raises(ConfigError, match="not an OTLP senders file"):
        Senders(path).names()


def test_seen_ids_survive_a_restart_a_torn_line_and_compaction(tmp_path):
    path = tmp_path / "seen.log"
    seen = Seen(path, keep=1000)
    ids = [f"{i:08x}-0000-5000-8000-000000000000" for i in range(2500)]
    seen.add_all(ids[:10])
    with open(path, "a") as fh:
        fh.write("0000")  # a crash mid-write
    again = Seen(path, keep=1000)
    assert all(i in again for i in ids[:10]) and len(again) == 10
    again.add_all(ids[10:2500])
    assert len(again) == 1000 and ids[-1] in again and ids[0] not in again
    assert len(path.read_text().splitlines()) <= 2000 + 10  # compacted
    assert len(Seen(path, keep=1000)) == 1000
