"""Each record's content key (pipeline/contract/subject_keys.py seals under it): one row a record in
one SQLite database in the content-keys folder, `records.sqlite3`, instead of one file a record.

A file a record cost the gateway a file creation and an fsync a request (a third of its CPU, issue
27) and the folder an inode a request (millions a month; expiry read them all). Here a batch of
seals is one transaction (one fsync), expiry is an index range, and erasure deletes a row with
`secure_delete` on (SQLite overwrites the deleted bytes with zeros in the database's pages) and then
truncates the write-ahead log, whose older frames may still hold the row. As with a file overwritten
in place, a copy-on-write or journaling file system or a backup may keep old blocks: the folder's
storage must be erasable and out of backups (subject_keys.py).

Only the row's `key` is secret. A table with a rowid keeps each row in its leaf cell alone (interior
pages hold rowids; the indexes hold the event id and the expiry), so zeroing the cell destroys it.
Rows read back are checked like any stored input: a key of 32 bytes, subjects a list of strings.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from aiaudit.pipeline.contract.sealed import KEY_BYTES
from aiaudit.pipeline.errors import ConfigError

FILE_NAME = "records.sqlite3"
SCHEMA_VERSION = 1
MAX_EVENT_ID_CHARS = 256
EXPIRED_PAGE = 1000  # rows read at a time when listing what has expired
INSERT_ROWS = 500  # keys made by one statement (6 values a row: within SQLite's 32,766 variables)
BUSY_TIMEOUT_MS = 10_000  # another process (the gateway, `aiaudit erase`) holding the write lock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS record_keys (
    event_id   TEXT NOT NULL UNIQUE,
    key        BLOB NOT NULL,
    expires_at TEXT NOT NULL,   -- as the content message says it (RFC 3339)
    expires_s  REAL NOT NULL,   -- the same instant in epoch seconds: what expiry selects on
    subjects   TEXT NOT NULL,   -- JSON list of the subjects the content is about
    created    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS record_keys_expiry ON record_keys (expires_s);
"""


class RecordKeys:
    """The record-key table of one content-keys folder. Thread-safe (one connection, one lock);
    processes share it through SQLite's locking. Errors come out as ConfigError (the database cannot
    be opened, or a row is not a record key) or OSError (a read or write failed)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE_NAME
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._in_batch = False

    def _connect(self) -> sqlite3.Connection:
        """The connection, opened on first use. Raises ConfigError when the database cannot be opened
        (the folder not writable, a file that is not one, one of a newer release)."""
        if self._db is None:
            try:  # made private before SQLite opens it: its -wal and -shm files take the same mode
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                     check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")  # durable at every commit
                db.execute("PRAGMA secure_delete=ON")  # a deleted row's bytes are overwritten
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    db.close()
                    raise ConfigError(f"{self.path}: record keys of a newer aiaudit (schema {version}); "
                                      "upgrade aiaudit to read them")
                if version < SCHEMA_VERSION:  # new: made once (a write, so not on every open)
                    db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
            except (sqlite3.Error, OSError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ConfigError(f"{self.path}: the record keys cannot be opened ({why})") from exc
            self._db = db
        return self._db

    @contextlib.contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connect()
            except sqlite3.Error as exc:
                raise OSError(f"{self.path}: {exc}") from exc

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Keys made inside are committed together on leaving (one fsync); an error inside, or a
        commit that fails (OSError), makes none of them. Holds the store's lock throughout."""
        with self._using() as db:
            if self._in_batch:
                raise RuntimeError("record-key batches do not nest")
            db.execute("BEGIN IMMEDIATE")
            self._in_batch = True
            try:
                yield
            except BaseException:
                db.execute("ROLLBACK")
                raise
            else:
                try:
                    db.execute("COMMIT")
                except sqlite3.Error:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    raise
            finally:
                self._in_batch = False

    def _row(self, db: sqlite3.Connection, event_id: str) -> dict[str, Any] | None:
        row = db.execute("SELECT key, expires_at, subjects FROM record_keys WHERE event_id = ?", (event_id,)).fetchone()
        if row is None:
            return None
        key, expires_at, subjects = row
        try:
            listed = json.loads(subjects)
        except ValueError:
            listed = None
        if not isinstance(key, bytes) or len(key) != KEY_BYTES or not isinstance(expires_at, str) \
                or not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
            raise ConfigError(f"{self.path}: the row of {event_id[:80]!r} is not a record key")
        return {"event_id": event_id, "key": key, "expires_at": expires_at, "subjects": listed}

    def get(self, event_id: str) -> dict[str, Any] | None:
        """{"event_id", "key", "expires_at", "subjects"}, or None."""
        with self._using() as db:
            return self._row(db, event_id)

    @staticmethod
    def check(event_id: str, expires_at: str) -> float:
        """The expiry in epoch seconds of a key to make. Raises ValueError for an event id out of
        bounds or an expiry that is not RFC 3339 with a time zone."""
        if not 0 < len(event_id) <= MAX_EVENT_ID_CHARS:
            raise ValueError(f"an event id is 1-{MAX_EVENT_ID_CHARS} characters")
        expires = datetime.fromisoformat(expires_at)  # ValueError for what is not RFC 3339
        if expires.tzinfo is None:
            raise ValueError(f"expires_at {expires_at!r} has no time zone")
        return expires.timestamp()

    def make(self, event_id: str, expires_at: str, subjects: tuple[str, ...], created: str) -> bytes:
        """The record's key, made when missing (one another process made first is used). Durable
        before it returns, unless inside `batch()`: then at the batch's commit."""
        return self.make_many([(event_id, expires_at, subjects)], created)[event_id]

    def make_many(self, wanted: list[tuple[str, str, tuple[str, ...]]], created: str) -> dict[str, bytes]:
        """{event id: its key} for each (event id, expires_at, subjects), made when missing (one that
        is there already is used). Each is checked first (ValueError). Inserted INSERT_ROWS to a
        statement: a statement releases the interpreter once, not once a row (the keeper's thread
        took it back from the request path ~5 times a job, each a futex round trip)."""
        rows = [(event_id, os.urandom(KEY_BYTES), expires_at, self.check(event_id, expires_at),
                 json.dumps(list(subjects)), created) for event_id, expires_at, subjects in wanted]
        keys: dict[str, bytes] = {}
        with self._using() as db:
            for start in range(0, len(rows), INSERT_ROWS):
                chunk = rows[start:start + INSERT_ROWS]
                before = db.total_changes
                db.execute("INSERT INTO record_keys (event_id, key, expires_at, expires_s, subjects, created) VALUES "
                           + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk)) + " ON CONFLICT (event_id) DO NOTHING",
                           [value for row in chunk for value in row])
                if db.total_changes - before == len(chunk):
                    keys.update((row[0], row[1]) for row in chunk)
                    continue
                for row in chunk:  # some were there already (made by another process, or twice here): theirs stand
                    found = self._row(db, row[0])
                    assert found is not None  # inserted, or there before
                    keys[row[0]] = bytes(found["key"])
        return keys

    def destroy(self, event_ids: list[str]) -> dict[str, bytes]:
        """Delete these records' keys in one transaction (their bytes overwritten, then the log cut);
        {event id: the key it was} for those that had one."""
        gone: dict[str, bytes] = {}
        with self._using() as db:
            if self._in_batch:
                raise RuntimeError("keys are not destroyed inside a batch")
            db.execute("BEGIN IMMEDIATE")
            try:
                for event_id in event_ids:
                    found = self._row(db, event_id)
                    if found is not None:
                        db.execute("DELETE FROM record_keys WHERE event_id = ?", (event_id,))
                        gone[event_id] = bytes(found["key"])
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            if gone:
                # The log's older frames can hold the rows as they were: copied into the database
                # (where they are zeros now) and the log cut to nothing. Busy (a reader elsewhere)
                # leaves the log to SQLite's next checkpoint, whose frames overwrite it.
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return gone

    def expired(self, now: datetime) -> Iterator[tuple[str, str]]:
        """(event_id, expires_at) of every key past its time at `now`, soonest first, read a page at a
        time (the rows can be destroyed between pages)."""
        last: tuple[float, int] = (float("-inf"), -1)
        while True:
            with self._using() as db:
                rows = db.execute("SELECT expires_s, rowid, event_id, expires_at FROM record_keys "
                                  "WHERE expires_s <= ? AND (expires_s, rowid) > (?, ?) "
                                  "ORDER BY expires_s, rowid LIMIT ?",
                                  (now.timestamp(), *last, EXPIRED_PAGE)).fetchall()
            for expires_s, rowid, event_id, expires_at in rows:
                yield str(event_id), str(expires_at)
                last = (expires_s, rowid)
            if len(rows) < EXPIRED_PAGE:
                return

    def count(self) -> int:
        with self._using() as db:
            return int(db.execute("SELECT count(*) FROM record_keys").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
