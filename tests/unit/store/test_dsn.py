"""A mistyped store is an error, never an empty answer (the CLI, as a user runs it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.store.client import check_dsn


@pytest.mark.parametrize("dsn", ["chdb:///var/lib/aiaudit/chdb", "http://ch.internal:8123/aiaudit",
                                 "https://user:secret@ch.example:8443/db"])
def test_good_dsns_pass(dsn):
    check_dsn(dsn)


@pytest.mark.parametrize(("dsn", "why"), [
    ("garbage", "neither chdb:///absolute/path nor http"),
    ("localhost:8123", "neither"),
    ("chdb://relative/path", "absolute path"),
    ("chdb:", "absolute path"),
    ("http://ch.internal:9000/aiaudit", "port 9000 is ClickHouse's native protocol.*use port 8123"),
    ("https://ch.internal:9440", "use port 8443"),
    ("http://:8123", "neither"),
    ("http://ch.internal:99999", "Port out of range"),
])
def test_bad_dsns_say_what_a_dsn_looks_like(dsn, why):
    with pytest.raises(ConfigError, match=why):
        check_dsn(dsn)


def test_a_password_in_a_bad_dsn_is_not_printed():
    with pytest.raises(ConfigError) as info:
        check_dsn("http://admin:hunter2@ch.internal:9000/db")
    assert "hunter2" not in str(info.value)


def _cli(tmp_path, dsn, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIAUDIT_")}
    env.update(AIAUDIT_CLICKHOUSE__DSN=dsn, AIAUDIT_LOCAL__STATE_DIR=str(tmp_path / "state"),
               AIAUDIT_SIGNING__KEYS_DIR=str(tmp_path / "keys"))
    return subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_mistyped_embedded_store_is_an_error_and_is_not_created(tmp_path):
    from aiaudit.pipeline.keys import generate_key

    generate_key(tmp_path / "keys")
    typo = tmp_path / "typo"
    for args in (["query"], ["verify"], ["export"], ["alerts", "list"]):
        out = _cli(tmp_path, f"chdb://{typo}", *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert "no aiaudit store at chdb://" in out.stderr and "nothing was ever written there" in out.stderr
        assert "(no records)" not in out.stdout and "Traceback" not in out.stderr
    assert not typo.exists()


def test_an_existing_embedded_store_of_another_database_is_an_error_too(tmp_path):
    store_dir = tmp_path / "chdb"
    made = subprocess.run([sys.executable, "-c", "import chdb.session as s; x = s.Session(%r); "
                           "x.query('CREATE DATABASE other'); x.close()" % str(store_dir)],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    out = _cli(tmp_path, f"chdb://{store_dir}", "query")
    assert out.returncode == 2 and "no aiaudit store" in out.stderr and "database aiaudit" in out.stderr


def test_a_dsn_that_is_not_one_is_an_error_from_the_cli(tmp_path):
    out = _cli(tmp_path, "garbage", "query")
    assert out.returncode == 2 and out.stderr.startswith("aiaudit: error:") and "chdb:///" in out.stderr
