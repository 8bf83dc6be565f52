"""Console accounts: a name, a console role and a scrypt hash of the password, kept in one JSON
file of mode 0600 (`aiaudit console account add|list|remove`). No password is stored or logged.

    {"version": 1, "accounts": {"alice": {"role": "auditor", "scrypt": "<n>$<r>$<p>$<salt>$<hash>",
                                          "created": RFC 3339}}}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiaudit.pipeline.console.roles import ROLES
from aiaudit.pipeline.contract.analysts import ANALYST_NAME
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
MAX_ACCOUNTS = 10_000
MAX_FILE_BYTES = 16 << 20
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1  # OWASP's minimum for scrypt; about 0.1 s here
_MAXMEM = 128 * SCRYPT_R * SCRYPT_N * 2


@dataclass(frozen=True)
class Account:
    name: str
    role: str


def accounts_file(settings: Settings) -> Path:
    return settings.console.accounts_file or settings.local.state_dir / "console" / "accounts.json"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=_MAXMEM, dklen=32)
    return f"{n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def password_matches(password: str, stored: str) -> bool:
    """Whether `password` gives the stored scrypt hash (constant time in the hash compared)."""
    try:
        n_text, r_text, p_text, salt, want = stored.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        if not (1 << 10 <= n <= 1 << 20 and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 4):
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True), n=n, r=r, p=p,
                             maxmem=max(_MAXMEM, 128 * r * n * 2), dklen=32)
        return hmac.compare_digest(got, base64.b64decode(want, validate=True))
    except (ValueError, TypeError):
        return False


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConfigError(f"a console password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def check_name(name: str) -> str:
    if not ANALYST_NAME.fullmatch(name):
        raise ConfigError(f"account name {name[:80]!r}: letters, digits and . _ @ + -, at most 128")
    return name


class Accounts:
    """The accounts file: read on every sign-in (an account added or removed counts at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._dummy = hash_password(secrets.token_urlsafe(16))  # a sign-in as no one costs the same

    def _read(self) -> dict[str, Any]:
        try:
            if self.path.stat().st_size > MAX_FILE_BYTES:
                raise ConfigError(f"{self.path}: larger than {MAX_FILE_BYTES} bytes: not a console accounts file")
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 1, "accounts": {}}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: not a console accounts file ({exc})") from exc
        if type(doc) is not dict or doc.get("version") != 1 or type(doc.get("accounts")) is not dict:
            raise ConfigError(f"{self.path}: not a console accounts file (version 1 with an accounts object)")
        return doc

    def _write(self, doc: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        tmp.replace(self.path)

    def add(self, name: str, role: str, password: str, *, replace: bool = False) -> None:
        check_name(name)
        check_password(password)
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}")
        doc = self._read()
        if name in doc["accounts"] and not replace:
            raise ConfigError(f"account {name!r} exists: --replace to set its role and password anew")
        if len(doc["accounts"]) >= MAX_ACCOUNTS and name not in doc["accounts"]:
            raise ConfigError(f"at most {MAX_ACCOUNTS} console accounts")
        doc["accounts"][name] = {"role": role, "scrypt": hash_password(password),
                                 "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self._write(doc)

    def remove(self, name: str) -> None:
        doc = self._read()
        if doc["accounts"].pop(name, None) is None:
            raise ConfigError(f"no console account {name!r}")
        self._write(doc)

    def list(self) -> list[dict[str, str]]:
        return [{"name": str(name), "role": str(entry.get("role")), "created": str(entry.get("created"))}
                for name, entry in sorted(self._read()["accounts"].items()) if type(entry) is dict]

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account when `password` is its own, else None (the same work either way)."""
        if not ANALYST_NAME.fullmatch(name) or len(password) > MAX_PASSWORD:
            password_matches("x", self._dummy)
            return None
        entry = self._read()["accounts"].get(name)
        if type(entry) is not dict or entry.get("role") not in ROLES or type(entry.get("scrypt")) is not str:
            password_matches(password, self._dummy)
            return None
        return Account(name, str(entry["role"])) if password_matches(password, entry["scrypt"]) else None
