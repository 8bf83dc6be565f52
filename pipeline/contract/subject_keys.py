"""The keys content is sealed under (pipeline/contract/sealed.py), kept outside Kafka: one folder,
one file per subject and per record, created by whoever seals first (the gateway) and destroyed by
`aiaudit erase`. The I/O edge of sealing.

    <dir>/subjects/<sha256(subject)>.key   {"subject", "key", "created"}         (0600)
    <dir>/records/<sha256(event_id)>.key   {"event_id", "key", "expires_at", "subjects"}  (0600)
    <dir>/holds.json                        subjects under legal hold: erasure refused

Destroying a key overwrites its file and removes it. On a copy-on-write or journaling file system,
or in a backup of this folder, old blocks may survive: keep the folder on storage you can erase,
out of backups (or in a KMS that destroys keys; a key store with the same methods).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiaudit.pipeline.contract import sealed
from aiaudit.pipeline.contract.sealed import KEY_BYTES, key_id
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.files import replace_atomically

MAX_KEY_FILE_BYTES = 4096
MAX_SUBJECT_CHARS = 256


def _name(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest() + ".key"


class SubjectKeys:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        if not folder.exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
        for sub in ("subjects", "records"):
            (folder / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = folder.stat().st_mode
        if mode & 0o077:
            raise ConfigError(f"{folder} holds content keys and is open to others (mode {mode & 0o777:o}): "
                              f"chmod 700 {folder}")

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

    def _create(self, path: Path, doc: dict[str, Any], unsynced: list[Path] | None = None) -> bytes:
        """A new key file (never replacing one). Durable before it returns, or, given `unsynced`,
        written and listed there for `make_durable` (a batch's files committed together)."""
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
            if unsynced is None:
                os.fsync(fh.fileno())
        if unsynced is not None:
            unsynced.append(path)
        return key

    @staticmethod
    def make_durable(paths: list[Path]) -> None:
        """fsync each file `_create` wrote unsynced, then their folders. The first fsync commits the
        file system's journal with every file written before it, so the rest cost little: a batch
        pays about one commit, not one a file. Raises OSError."""
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for folder in {p.parent for p in paths}:
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def subject_key(self, subject: str, *, create: bool = False, unsynced: list[Path] | None = None) -> bytes | None:
        if not 0 < len(subject) <= MAX_SUBJECT_CHARS:
            raise ValueError(f"a subject is 1-{MAX_SUBJECT_CHARS} characters")
        path = self.folder / "subjects" / _name(subject)
        found = self._read(path)
        if found is not None:
            return bytes(found["key"])
        if not create:
            return None
        return self._create(path, {"subject": subject, "created": _now()}, unsynced)

    def record_key(self, event_id: str, *, expires_at: str | None = None, subjects: tuple[str, ...] = (),
                   unsynced: list[Path] | None = None) -> bytes | None:
        """The record's key; with expires_at, made when missing (the sealing side)."""
        path = self.folder / "records" / _name(event_id)
        found = self._read(path)
        if found is not None:
            return bytes(found["key"])
        if expires_at is None:
            return None
        return self._create(path, {"event_id": event_id, "expires_at": expires_at, "subjects": list(subjects)},
                            unsynced)

    def record_subjects(self, event_id: str) -> list[str]:
        """The subjects a record's content is about, as its key file says ([] when it has none)."""
        found = self._read(self.folder / "records" / _name(event_id))
        subjects = found.get("subjects") if found else None
        return [s for s in subjects if isinstance(s, str)] if isinstance(subjects, list) else []

    def seal(self, event_id: str, subjects: tuple[str, ...], expires_at: str, content: dict[str, Any],
             unsynced: list[Path] | None = None) -> tuple[str, dict[str, str]]:
        """`content` sealed under every subject's key and the record's (each made when missing; given
        `unsynced`, the keys made are listed there and not durable until `make_durable`: publish
        nothing sealed under them before). Returns (sealed, {subject or "record": key id})."""
        subject_keys = [self.subject_key(s, create=True, unsynced=unsynced) for s in subjects]
        record = self.record_key(event_id, expires_at=expires_at, subjects=subjects, unsynced=unsynced)
        assert record is not None and all(k is not None for k in subject_keys)
        keys = [k for k in subject_keys if k is not None]
        ids = {s: key_id(k) for s, k in zip(subjects, keys)} | {"record": key_id(record)}
        return sealed.seal(sealed.content_key(keys, record, event_id), event_id, content), ids

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
        return self._destroy(self.folder / "records" / _name(event_id))

    def expired(self, now: datetime) -> list[tuple[str, str]]:
        """(event_id, expires_at) of every record key past its retention at `now`."""
        out = []
        for path in sorted((self.folder / "records").glob("*.key")):
            found = self._read(path)
            if found is not None and datetime.fromisoformat(str(found["expires_at"])) <= now:
                out.append((str(found["event_id"]), str(found["expires_at"])))
        return out

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
