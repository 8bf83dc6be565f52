"""The console's pure parts: roles, sessions (expiry, CSRF, the sign-in throttle), accounts
(scrypt, the file's shape), the page cursor (hostile input)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from aiaudit.pipeline.console import roles
from aiaudit.pipeline.console.accounts import Accounts, hash_password, password_matches
from aiaudit.pipeline.console.reads import cursor_text, parse_cursor
from aiaudit.pipeline.console.sessions import FAILURES_ALLOWED, SessionStore
from aiaudit.pipeline.errors import ConfigError


def test_roles_are_the_consoles_own_and_admin_does_all():
    assert roles.can("auditor", "reports") and roles.can("auditor", "access") and not roles.can("auditor", "incident_change")
    assert roles.can("soc", "incident_change") and not roles.can("soc", "records") and not roles.can("soc", "reports")
    assert roles.can("analyst", "records") and not roles.can("analyst", "incidents")
    assert all(roles.can("admin", what) for what in roles.ALLOWED)
    assert not roles.can("admin", "anything-else") and not roles.can("operator", "overview")  # unknown: no one
    assert [p for p, _ in roles.menu("soc")] == ["/", "/incidents", "/alerts", "/keys"]
    assert roles.can(("soc", "analyst"), "records") and roles.can(("soc", "analyst"), "incident_change")
    assert not roles.can((), "overview") and not roles.can(("root",), "overview")
    assert roles.console_roles(["analyst", "Domain Admins", "soc"]) == ("soc", "analyst")
    assert roles.console_roles("auditor") == ("auditor",)
    for hostile in (None, 7, {"admin": True}, [["admin"]], "admin,soc", ""):
        assert roles.console_roles(hostile) == ()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_end_when_idle_or_old_and_carry_their_own_csrf_token():
    clock = Clock()
    s = SessionStore(idle_s=60, max_s=300, clock=clock)
    sid, session = s.create("account:ada", ("auditor",), "account")
    assert s.get(sid) is session and s.get(sid + "x") is None and s.get(None) is None and s.get("é" * 10) is None
    assert s.csrf_ok(session, session.csrf) and not s.csrf_ok(session, None) and not s.csrf_ok(session, "x" * 43)
    other_sid, other = s.create("account:sam", ("soc",), "account")
    assert not s.csrf_ok(session, other.csrf)  # one session's token is no other's
    for _ in range(5):
        clock.now += 50  # each request restarts the idle time ...
        assert s.get(sid) is session
    clock.now += 51
    assert s.get(sid) is None and s.get(other_sid) is None  # ... and idle past 60 s ends it
    sid, _ = s.create("account:ada", ("auditor",), "account")
    for _ in range(7):
        clock.now += 45
        s.get(sid)
    assert s.get(sid) is None  # past 300 s since sign-in, however busy
    sid, _ = s.create("account:ada", ("auditor",), "account")
    s.drop(sid)
    assert s.get(sid) is None
    assert all(k != sid.encode() for k in s._sessions)  # the table keeps digests, never ids


def test_sign_in_throttle_counts_failures_per_name_in_a_window():
    clock = Clock()
    s = SessionStore(idle_s=60, max_s=300, clock=clock)
    for _ in range(FAILURES_ALLOWED - 1):
        s.failed("ada")
    assert not s.throttled("ada")
    s.failed("ada")
    assert s.throttled("ada") and not s.throttled("sam")
    clock.now += 901
    assert not s.throttled("ada")
    s.failed("sam")
    s.succeeded("sam")
    assert s._failures.get("sam") is None


def test_accounts_hash_with_scrypt_and_refuse_what_is_not_an_account(tmp_path):
    stored = hash_password("correct horse battery", n=1 << 10)
    assert password_matches("correct horse battery", stored) and not password_matches("correct horse batterY", stored)
    for hostile in ("", "a$b", "1048577$8$1$AAAA$AAAA", f"{1 << 30}$8$1$AAAA$AAAA", "1024$8$1$!!$AAAA"):
        assert not password_matches("x", hostile)  # no crash, no huge memory: refused
    accounts = Accounts(tmp_path / "console" / "accounts.json")
    accounts.add("ada", "auditor", "ada-audits-2026!")
    assert (tmp_path / "console" / "accounts.json").stat().st_mode & 0o777 == 0o600
    assert "ada-audits" not in accounts.path.read_text()
    assert accounts.authenticate("ada", "ada-audits-2026!").role == "auditor"
    assert accounts.authenticate("ada", "wrong-password!!") is None and accounts.authenticate("bob", "x" * 12) is None
    assert accounts.authenticate("../etc", "x") is None
    with pytest.raises(ConfigError, match="12 to 1024"):
        accounts.add("bob", "soc", "short")
    with pytest.raises(ConfigError, match="role must be one of"):
        accounts.add("bob", "root", "long-enough-password")
    with pytest.raises(ConfigError, match="exists"):
        accounts.add("ada", "admin", "another-password!")
    with pytest.raises(ConfigError, match="letters, digits"):
        accounts.add("<b>", "soc", "long-enough-password")
    accounts.add("bob", "soc", "bob-triages-2026!")
    accounts.remove("bob")
    assert [a["name"] for a in accounts.list()] == ["ada"] and accounts.authenticate("bob", "bob-triages-2026!") is None
    with pytest.raises(ConfigError, match="no console account"):
        accounts.remove("bob")
    doc = json.loads(accounts.path.read_text())
    doc["accounts"]["eve"] = {"role": "superuser", "scrypt": doc["accounts"]["ada"]["scrypt"]}
    accounts.path.write_text(json.dumps(doc))
    assert accounts.authenticate("eve", "ada-audits-2026!") is None  # a role the console does not know: no one
    accounts.path.write_text("[]")
    with pytest.raises(ConfigError, match="not a console accounts file"):
        accounts.authenticate("ada", "ada-audits-2026!")


def test_the_page_cursor_round_trips_and_refuses_what_it_did_not_make():
    row = {"ts": datetime(2026, 12, 1, 9, 0, 1, 250000, tzinfo=timezone.utc), "origin": "acme/prod/p0/g1", "seq": 41}
    assert parse_cursor(cursor_text(row)) == (row["ts"], "acme/prod/p0/g1", 41)
    assert parse_cursor(None) is None and parse_cursor("") is None
    for hostile in ("x" * 600, "!!!", "e30", "WyJ4IiwiYSIsMV0", "WyIyMDI2LTEyLTAxVDA5OjAwOjAxIiwiYSIsLTFd"):
        with pytest.raises(ConfigError):
            parse_cursor(hostile)
