"""The keys content is sealed under (pipeline/contract/sealed.py), kept outside Kafka in one folder:
one file per subject, one row per record, created by whoever seals first (the gateway) and
destroyed by `aiaudit erase`. The I/O edge of sealing.

    <dir>/subjects/<sha256(subject)>.key   {"subject", "key", "created"}         (0600)
    <dir>/records.sqlite3                  a row per record: its key, expires_at, subjects (0600;
                                           pipeline/contract/record_keys.py)
    <dir>/records/<sha256(event_id)>.key   a record's key as releases before 2026-12-05 kept it:
                                           still read, expired and erased; never made now
    <dir>/holds.json                       subjects under legal hold: erasure refused

Destroying a key overwrites it (the file, or the row's bytes in the database) and removes it. On a
copy-on-write or journaling file system, or in a backup of this folder, old blocks may survive:
keep the folder on storage you can erase, out of backups (or in a KMS that destroys keys; a key
store with the same methods).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiaudit.pipeline.contract import sealed
from aiaudit.pipeline.contract.record_keys import RecordKeys
from aiaudit.pipeline.contract.sealed import KEY_BYTES, key_id
from aiaudit.pipeline.errors import AiAuditError, ConfigError
from aiaudit.pipeline.files import replace_atomically

MAX_KEY_FILE_BYTES = 4096
MAX_SUBJECT_CHARS = 256
MAX_CACHED_SUBJECTS = 10_000  # subject keys remembered between seals (each checked against its file)


@dataclass(frozen=True)
class Sealing:
    """One content to seal: its record's event id, whom it is about, until when its record key lives."""

    event_id: str
    subjects: tuple[str, ...]
    expires_at: str
    content: dict[str, Any]


@dataclass
class KeyBatch:
    """Keys made by the seals of one batch (SubjectKeys.batch): the subject key files written and not
    yet durable."""

    unsynced: list[Path] = field(default_factory=list)


def _name(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest() + ".key"


class SubjectKeys:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        if not folder.exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
        (folder / "subjects").mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = folder.stat().st_mode
        if mode & 0o077:
            raise ConfigError(f"{folder} holds content keys and is open to others (mode {mode & 0o777:o}): "
                              f"chmod 700 {folder}")
        self.records = RecordKeys(folder)
        self._legacy = (folder / "records").is_dir()  # record key files of releases before 2026-12-05
        # subject -> (key, the file's identity when read): a seal checks the file is still the one
        # read (a stat) instead of reading it again; erased or replaced, it is read (or made) anew.
        self._subjects: dict[str, tuple[bytes, tuple[int, int, int, int]]] = {}
        self._subjects_lock = threading.Lock()

    # --- reading and creating ----------------------------------------------------------

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            with path.open("rb") as fh:
                doc = json.loads(fh.read(MAX_KEY_FILE_BYTES + 1))
            key = base64.b64decode(doc["key"], validate=True)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not a content key file ({type(exc).__name__})") from exc
        if len(key) != KEY_BYTES:
            raise ConfigError(f"{path}: not a content key file (key of {len(key)} bytes)")
        return {**doc, "key": key}

    def _create(self, path: Path, doc: dict[str, Any], batch: KeyBatch | None = None) -> bytes:
        """A new key file (never replacing one). Durable before it returns, or, given a batch,
        written and listed there (the batch makes its files durable together)."""
        key = os.urandom(KEY_BYTES)
        data = json.dumps({**doc, "key": base64.b64encode(key).decode()}).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use that one
            found = self._read(path)
            if found is None:
                raise ConfigError(f"{path}: made and removed at once; try again") from None
            return bytes(found["key"])
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if batch is None:
                os.fsync(fh.fileno())
        if batch is not None:
            batch.unsynced.append(path)
        return key

    @staticmethod
    def _make_durable(paths: list[Path]) -> None:
        """fsync each file `_create` wrote unsynced, then their folders. The first fsync commits the
        file system's journal with every file written before it, so the rest cost little. Raises OSError."""
        for path in [*paths, *{p.parent for p in paths}]:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    @contextlib.contextmanager
    def batch(self) -> Iterator[KeyBatch]:
        """Seals made inside (`seal(..., batch=b)`) have their new keys durable together on leaving:
        the subject files' fsyncs, then the record keys' one commit. Publish nothing sealed inside
        before it is left; an OSError on leaving (or any error inside) makes none of the record keys.
        Other threads' seals wait until it is left."""
        made = KeyBatch()
        with self.records.batch():
            yield made
            self._make_durable(made.unsynced)

    @staticmethod
    def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
        return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size

    def subject_key(self, subject: str, *, create: bool = False, batch: KeyBatch | None = None) -> bytes | None:
        if not 0 < len(subject) <= MAX_SUBJECT_CHARS:
            raise ValueError(f"a subject is 1-{MAX_SUBJECT_CHARS} characters")
        path = self.folder / "subjects" / _name(subject)
        with self._subjects_lock:
            cached = self._subjects.get(subject)
        if cached is not None:
            try:
                if self._identity(os.stat(path)) == cached[1]:
                    return cached[0]
            except FileNotFoundError:
                pass  # erased: read (or made) anew below
        found = self._read(path)
        if found is not None:
            key = bytes(found["key"])
        elif not create:
            return None
        else:
            key = self._create(path, {"subject": subject, "created": _now()}, batch)
        try:
            identity = self._identity(os.stat(path))
        except FileNotFoundError:  # erased as it was read: not remembered
            return key
        with self._subjects_lock:
            if len(self._subjects) >= MAX_CACHED_SUBJECTS:
                self._subjects.clear()
            self._subjects[subject] = (key, identity)
        return key

    def _record_file(self, event_id: str) -> Path:
        return self.folder / "records" / _name(event_id)

    def _record(self, event_id: str) -> dict[str, Any] | None:
        """A record's key, its expiry and subjects: its row, or its file (releases before 2026-12-05)."""
        return self.records.get(event_id) or (self._read(self._record_file(event_id)) if self._legacy else None)

    def record_key(self, event_id: str, *, expires_at: str | None = None, subjects: tuple[str, ...] = ()) -> bytes | None:
        """The record's key; with expires_at, made when missing (the sealing side). Made inside a
        `batch()`, it is durable when the batch is left; otherwise before it returns."""
        if expires_at is None:
            found = self._record(event_id)
            return bytes(found["key"]) if found is not None else None
        return self._legacy_key(event_id) or self.records.make(event_id, expires_at, subjects, _now())

    def _legacy_key(self, event_id: str) -> bytes | None:
        """The record's key from a file of a release before 2026-12-05, if it has one."""
        old = self._read(self._record_file(event_id)) if self._legacy else None
        return bytes(old["key"]) if old is not None else None

    def record_subjects(self, event_id: str) -> list[str]:
        """The subjects a record's content is about, as its key says ([] when it has none)."""
        found = self._record(event_id)
        subjects = found.get("subjects") if found else None
        return [s for s in subjects if isinstance(s, str)] if isinstance(subjects, list) else []

    def seal(self, event_id: str, subjects: tuple[str, ...], expires_at: str, content: dict[str, Any],
             batch: KeyBatch | None = None) -> tuple[str, dict[str, str]]:
        """`content` sealed under every subject's key and the record's (each made when missing; inside
        `batch()`, pass its KeyBatch: the keys made are durable when it is left, so publish nothing
        sealed here before). Returns (sealed, {subject or "record": key id}). Raises ValueError,
        OSError, ConfigError."""
        done = self.seal_many([Sealing(event_id, subjects, expires_at, content)], batch)[0]
        if isinstance(done, Exception):
            raise done
        return done

    def seal_many(self, jobs: list[Sealing], batch: KeyBatch | None = None) -> list[tuple[str, dict[str, str]] | Exception]:
        """Each job sealed as `seal` seals one, the record keys made together (one statement a few
        hundred); for each job (sealed, key ids), or the error that kept it from being sealed (its
        subject or expiry out of bounds, its keys unreadable) without stopping the rest."""
        out: list[tuple[str, dict[str, str]] | Exception | None] = [None] * len(jobs)
        people: dict[str, bytes] = {}  # a person's key, read (or made) once a batch
        records: dict[str, bytes] = {}  # record keys of earlier releases' files
        wanted: list[tuple[str, str, tuple[str, ...]]] = []
        for i, job in enumerate(jobs):
            try:
                for s in job.subjects:
                    if s not in people:
                        made = self.subject_key(s, create=True, batch=batch)
                        assert made is not None  # made when missing
                        people[s] = made
                old = self._legacy_key(job.event_id)
                if old is not None:
                    records[job.event_id] = old
                else:
                    RecordKeys.check(job.event_id, job.expires_at)
                    wanted.append((job.event_id, job.expires_at, job.subjects))
            except (AiAuditError, OSError, ValueError) as exc:
                out[i] = exc
        records |= self.records.make_many(wanted, _now())  # OSError, ConfigError: the batch fails whole
        for i, job in enumerate(jobs):
            if out[i] is not None:
                continue
            keys, record = [people[s] for s in job.subjects], records[job.event_id]
            ids = {s: key_id(k) for s, k in zip(job.subjects, keys)} | {"record": key_id(record)}
            try:
                out[i] = sealed.seal(sealed.content_key(keys, record, job.event_id), job.event_id, job.content), ids
            except ValueError as exc:  # content the seal refuses (no subject, say)
                out[i] = exc
        return [o for o in out if o is not None]

    def open(self, event_id: str, subjects: list[str], key_ids: dict[str, str], box: str) -> dict[str, Any] | list[str]:
        """The content, or the names of the keys that are gone (erased: "record", or a subject)."""
        found: list[bytes] = []
        gone = []
        for name in [*subjects, "record"]:
            key = self.record_key(event_id) if name == "record" else self.subject_key(name)
            if key is None or key_id(key) != key_ids.get(name):
                gone.append(name)
            else:
                found.append(key)
        if gone:
            return gone
        return sealed.open_sealed(sealed.content_key(found[:-1], found[-1], event_id), event_id, box)

    # --- destroying ------------------------------------------------------------------------

    def _destroy(self, path: Path) -> str | None:
        found = self._read(path)
        if found is None:
            return None
        with path.open("r+b") as fh:  # overwrite before removing: the bytes do not linger in the file
            fh.write(b"\0" * max(path.stat().st_size, 1))
            fh.flush()
            os.fsync(fh.fileno())
        path.unlink()
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return key_id(bytes(found["key"]))

    def erase_subject(self, subject: str) -> str | None:
        """Destroy the subject's key; its key id, or None when it had none."""
        return self._destroy(self.folder / "subjects" / _name(subject))

    def erase_record(self, event_id: str) -> str | None:
        """Destroy the record's key; its key id, or None when it had none."""
        return self.erase_records([event_id])[event_id]

    def erase_records(self, event_ids: list[str]) -> dict[str, str | None]:
        """Destroy these records' keys together (one transaction); {event id: key id, or None}."""
        rows = self.records.destroy(event_ids)
        out: dict[str, str | None] = {}
        for event_id in event_ids:
            old = self._destroy(self._record_file(event_id)) if self._legacy else None  # an earlier release's file
            out[event_id] = key_id(rows[event_id]) if event_id in rows else old
        return out

    def expired(self, now: datetime) -> Iterator[tuple[str, str]]:
        """(event_id, expires_at) of every record key past its retention at `now`: the files of
        releases before 2026-12-05, then the rows, soonest first."""
        for path in sorted((self.folder / "records").glob("*.key")) if self._legacy else ():
            found = self._read(path)
            if found is not None and datetime.fromisoformat(str(found["expires_at"])) <= now:
                yield str(found["event_id"]), str(found["expires_at"])
        yield from self.records.expired(now)

    def close(self) -> None:
        self.records.close()

    # --- legal holds -------------------------------------------------------------------------

    def holds(self) -> dict[str, dict[str, str]]:
        path = self.folder / "holds.json"
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable ({exc}); no erasure until it is fixed") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: not a JSON object; no erasure until it is fixed")
        return doc

    def set_hold(self, subject: str, hold: dict[str, str] | None) -> None:
        holds = self.holds()
        if hold is None:
            holds.pop(subject, None)
        else:
            holds[subject] = hold
        replace_atomically(self.folder / "holds.json", (json.dumps(holds, indent=2) + "\n").encode(), mode=0o600)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
