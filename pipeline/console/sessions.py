"""Sign-in sessions, CSRF tokens and the sign-in throttle (pure, in memory; a restart signs
everyone out).

A session id is 32 random bytes, sent only as an HttpOnly, SameSite=Strict cookie; the server
keeps its SHA-256, never the id, so a leak of the table is no session. Each session has its own
CSRF token, which every form carries and every change is checked against. A session ends after
`idle_s` without a request and `max_s` after sign-in, whichever comes first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_SESSIONS = 10_000
FAILURES_ALLOWED = 5  # failed sign-ins of one name before it waits
FAILURE_WINDOW_S = 900.0
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass
class Session:
    person: str  # the principal an access record and an acknowledgement name (account:alice, oidc:...)
    roles: tuple[str, ...]
    via: str  # how the person signed in: "account" or the OIDC issuer
    csrf: str
    created: float
    seen: float


@dataclass
class SessionStore:
    idle_s: float
    max_s: float
    clock: object = time.monotonic
    _sessions: OrderedDict[bytes, Session] = field(default_factory=OrderedDict)
    _failures: OrderedDict[str, list[float]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _now(self) -> float:
        return float(self.clock())  # type: ignore[operator]  # a callable returning seconds

    @staticmethod
    def _key(session_id: str) -> bytes:
        return hashlib.sha256(session_id.encode()).digest()

    def create(self, person: str, roles: tuple[str, ...], via: str) -> tuple[str, Session]:
        """A new session: (its id for the cookie, the session). The oldest goes past MAX_SESSIONS."""
        session_id = secrets.token_urlsafe(32)
        now = self._now()
        session = Session(person, roles, via, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._sessions[self._key(session_id)] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of a cookie's id (its idle time restarted), or None."""
        if not session_id or len(session_id) > 64 or not set(session_id) <= _ID_CHARS:
            return None
        now = self._now()
        key = self._key(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.seen > self.idle_s or now - session.created > self.max_s:
                del self._sessions[key]
                return None
            session.seen = now
            self._sessions.move_to_end(key)
            return session

    def drop(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= 64:
            with self._lock:
                self._sessions.pop(self._key(session_id), None)

    @staticmethod
    def csrf_ok(session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(session.csrf.encode(), token.encode()[:128])

    def throttled(self, name: str) -> bool:
        """Whether sign-ins of `name` wait: FAILURES_ALLOWED failures in the last FAILURE_WINDOW_S."""
        now = self._now()
        with self._lock:
            recent = [t for t in self._failures.get(name[:128], []) if now - t < FAILURE_WINDOW_S]
            if recent:
                self._failures[name[:128]] = recent
            else:
                self._failures.pop(name[:128], None)
            return len(recent) >= FAILURES_ALLOWED

    def failed(self, name: str) -> None:
        with self._lock:
            self._failures.setdefault(name[:128], []).append(self._now())
            self._failures.move_to_end(name[:128])
            while len(self._failures) > MAX_SESSIONS:  # bounded: the names that failed longest ago go first
                self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name[:128], None)
