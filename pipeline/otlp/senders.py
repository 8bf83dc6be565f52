"""The senders an OTLP receiver accepts: a name and the SHA-256 of its token, in one JSON file of
mode 0600 (`aiaudit otlp sender add|list|remove`). A token is shown once, when it is made, and
never stored or logged; a sender's events carry its name in their emitter id.

    {"version": 1, "senders": {"checkout-app": {"sha256": "<hex>", "created": RFC 3339}}}

Tokens are 32 random bytes (`aiot_` + base64url), so SHA-256 is the right hash for them (there is
no dictionary to guard against), as for the gateway's API keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.files import file_stamp, replace_atomically
from aiaudit.pipeline.settings import Settings

TOKEN_PREFIX = "aiot_"
SENDER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
MAX_SENDERS = 10_000
MAX_FILE_BYTES = 4 << 20
MAX_TOKEN = 256
RELOAD_EVERY_S = 2.0


def state_dir(settings: Settings) -> Path:
    return settings.otlp.state_dir or settings.local.state_dir / "otlp"


def senders_file(settings: Settings) -> Path:
    return settings.otlp.senders_file or state_dir(settings) / "senders.json"


def check_name(name: str) -> str:
    if not SENDER_NAME.fullmatch(name):
        raise ConfigError(f"sender name {name[:80]!r}: lower-case letters, digits and . _ -, at most 64, "
                          "starting and ending with a letter or digit")
    return name


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Senders:
    """The senders file, re-read when it changes (a sender added or removed counts within seconds)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_digest: dict[str, str] = {}
        self._checked = float("-inf")

    def _read(self) -> dict[str, Any]:
        try:
            if self.path.stat().st_size > MAX_FILE_BYTES:
                raise ConfigError(f"{self.path}: larger than {MAX_FILE_BYTES} bytes: not an OTLP senders file")
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 1, "senders": {}}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: not an OTLP senders file ({exc})") from exc
        if type(doc) is not dict or doc.get("version") != 1 or type(doc.get("senders")) is not dict:
            raise ConfigError(f"{self.path}: not an OTLP senders file (version 1 with a senders object)")
        return doc

    def _write(self, doc: dict[str, Any]) -> None:
        replace_atomically(self.path, (json.dumps(doc, indent=2) + "\n").encode())

    def add(self, name: str, *, replace: bool = False) -> str:
        """A new sender (or, with `replace`, a new token for one); returns its token, to show once."""
        check_name(name)
        doc = self._read()
        if name in doc["senders"] and not replace:
            raise ConfigError(f"sender {name!r} exists: --replace gives it a new token (the old one stops working)")
        if len(doc["senders"]) >= MAX_SENDERS and name not in doc["senders"]:
            raise ConfigError(f"at most {MAX_SENDERS} senders")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        doc["senders"][name] = {"sha256": _digest(token),
                                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self._write(doc)
        return token

    def remove(self, name: str) -> None:
        doc = self._read()
        if doc["senders"].pop(name, None) is None:
            raise ConfigError(f"no sender {name!r}")
        self._write(doc)

    def listed(self) -> list[dict[str, str]]:
        return [{"name": str(n), "created": str(e.get("created"))}
                for n, e in sorted(self._read()["senders"].items()) if type(e) is dict]

    def names(self) -> list[str]:
        self._refresh()
        return sorted(self._by_digest.values())

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < RELOAD_EVERY_S:
            return
        with self._lock:
            self._checked = now
            stamp = file_stamp(self.path)
            if stamp == self._stamp and self._by_digest:
                return
            by_digest = {}
            for name, entry in self._read()["senders"].items():
                digest = entry.get("sha256") if type(entry) is dict else None
                if SENDER_NAME.fullmatch(str(name)) and isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest):
                    by_digest[digest] = str(name)
            self._by_digest, self._stamp = by_digest, stamp

    def authenticate(self, authorization: str | None) -> str | None:
        """The sender whose token the `Authorization: Bearer` header carries, else None."""
        if not authorization or len(authorization) > MAX_TOKEN + 16:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
            return None
        self._refresh()
        digest = _digest(token)
        for known, name in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return name
        return None
