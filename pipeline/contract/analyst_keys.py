"""Analyst keys on disk (the I/O edge of pipeline/contract/analysts.py), managed like emitter keys.

    <keys_dir>/analysts/jwks.json                  the analyst key set: public keys, each naming its analyst
    <keys_dir>/analysts/<name>.<kid8>.key          an analyst's private key made here (0600)
    <keys_dir>/analysts/<name>.<kid8>.console.key  a console's private key (it signs for who is signed in)

An analyst on another host makes their key there (`aiaudit keys analyst new NAME --no-register
--dir DIR`) and the operator registers the printed public JWK (`aiaudit keys analyst add NAME
FILE`). `aiaudit alerts|incidents ack|resolve|reopen` signs with the key in
AIAUDIT_SIGNING__ANALYST_KEY_FILE (or `--key`); the status chain worker refuses a change no
registered key signed for the analyst it names.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aiaudit.pipeline.contract.analysts import AnalystKeys, StatusSigner, owner, parse_analyst_key_set
from aiaudit.pipeline.errors import SigningKeyError
from aiaudit.pipeline.files import file_stamp, replace_atomically
from aiaudit.pipeline.keys import (
    Ed25519Signer,
    KeyRing,
    _check_folder,
    _utc_text,
    _write_private_key,
    load_signer,
    thumbprint,
)
from aiaudit.pipeline.settings import Settings

log = logging.getLogger("aiaudit.keys")

ANALYSTS_DIR = "analysts"
KEY_SET_FILE = "jwks.json"
CONSOLE_SUFFIX = ".console.key"
MAX_KEY_SET_BYTES = 1 << 20


def key_set_file(settings: Settings) -> Path:
    return settings.signing.analyst_keys_file or settings.signing.keys_dir / ANALYSTS_DIR / KEY_SET_FILE


def read_analyst_key_set(path: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """The analyst key set at `path`, shape-checked. Raises SigningKeyError for anything else."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_KEY_SET_BYTES + 1)
    except FileNotFoundError:
        if missing_ok:
            return {"keys": []}
        raise SigningKeyError(f"no analyst key set at {path}: register each analyst's key with `aiaudit keys analyst "
                              "new NAME` (or `add`)") from None
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the analyst key set: {exc.strerror}") from exc
    if len(raw) > MAX_KEY_SET_BYTES:
        raise SigningKeyError(f"{path}: over {MAX_KEY_SET_BYTES} bytes: not an analyst key set")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SigningKeyError(f"{path}: not UTF-8 JSON: {exc}") from None
    parse_analyst_key_set(doc, str(path))
    return dict(doc)


def analyst_keys_from(doc: dict[str, Any], where: str) -> AnalystKeys:
    keys = parse_analyst_key_set(doc, where)
    public = [{k: v for k, v in jwk.items() if k not in ("analyst", "console")} for jwk in keys]
    try:
        ring = KeyRing.from_jwks({"keys": public})
    except (ValueError, TypeError, KeyError) as exc:
        raise SigningKeyError(f"{where}: {exc}") from exc
    return AnalystKeys({thumbprint(jwk): owner(jwk) for jwk in keys}, ring)


def load_analyst_keys(path: Path) -> AnalystKeys:
    return analyst_keys_from(read_analyst_key_set(path), str(path))


def _write(path: Path, doc: dict[str, Any]) -> None:
    parse_analyst_key_set(doc, str(path))  # never write a set that would not load
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_folder(path.parent)
    replace_atomically(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o644)


def register_analyst_key(set_file: Path, name: str, jwk: dict[str, Any], *, console: bool = False) -> str:
    """Add a public key for analyst (or console) `name` to the set. Returns its kid."""
    public: dict[str, str] = {k: jwk[k] for k in ("kty", "crv", "x") if isinstance(jwk.get(k), str)}
    entry = {**public, "console" if console else "analyst": name}
    parse_analyst_key_set({"keys": [entry]}, "the new key")
    doc = read_analyst_key_set(set_file, missing_ok=True)
    kid = thumbprint(public)
    for existing in doc["keys"]:
        if thumbprint(existing) == kid:
            if owner(existing) != (name, console):
                raise SigningKeyError(f"key {kid} is already registered for {owner(existing)[0]!r}")
            return kid
    doc["keys"].append({**entry, "kid": kid, "alg": "EdDSA", "use": "sig"})
    _write(set_file, doc)
    return kid


def new_analyst_key(folder: Path, name: str, set_file: Path | None, *, console: bool = False
                    ) -> tuple[Path, str, dict[str, str]]:
    """Make a key for analyst (or console) `name` in `folder` (0600) and register it in `set_file`
    (None: only make it). Returns (private key file, kid, public JWK)."""
    StatusSigner(None, name)  # the name checked before anything is written
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_folder(folder)
    signer = Ed25519Signer.generate()
    path = folder / f"{name}.{signer.kid[:8]}{CONSOLE_SUFFIX if console else '.key'}"
    _write_private_key(path, signer.private_key)
    jwk = signer.jwk()
    if set_file is not None:
        register_analyst_key(set_file, name, jwk, console=console)
    return path, signer.kid, jwk


def retire_analyst_key(set_file: Path, kid: str, at: str) -> str:
    """Set the key's not_after to `at`: changes it signs from then on are refused. Returns its owner."""
    doc = read_analyst_key_set(set_file)
    for jwk in doc["keys"]:
        if thumbprint(jwk) == kid:
            jwk["not_after"] = _utc_text(at, at)
            _write(set_file, doc)
            return owner(jwk)[0]
    raise SigningKeyError(f"no key {kid} in {set_file}")


def load_status_signer(key_file: Path) -> StatusSigner:
    """The analyst's (or console's) signing key; its name is the file's up to `.<kid8>.key`."""
    name = key_file.name
    console = name.endswith(CONSOLE_SUFFIX)
    stem = name[: -len(CONSOLE_SUFFIX)] if console else name.removesuffix(".key")
    owner_name = stem.rsplit(".", 1)[0] if "." in stem else ""
    if not owner_name:
        raise SigningKeyError(f"{key_file}: an analyst key file is named <analyst>.<kid>.key (as `aiaudit keys "
                              "analyst new` makes it)")
    return StatusSigner(load_signer(key_file), owner_name, console=console)


class AnalystKeysFile:
    """The analyst key set a running chain worker checks status changes with, read again when the
    file changes. A file that stops loading keeps the last good set, and says so in the log; with
    no set at all, every change is refused (no one can be shown to have made it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._keys: AnalystKeys | None = None
        self.doc: dict[str, Any] | None = None  # the key set document behind current() (recorded as evidence)
        self.current()

    def current(self) -> AnalystKeys | None:
        stamp = file_stamp(self.path)
        if stamp != self._stamp:
            self._stamp = stamp
            if stamp is None:
                self._keys = self.doc = None
                log.error("analyst key set %s is missing: status changes are refused until it exists", self.path)
            else:
                try:
                    doc = read_analyst_key_set(self.path)
                    self._keys, self.doc = analyst_keys_from(doc, str(self.path)), doc
                    log.info("analyst key set %s: %d key(s)", self.path, len(self._keys.names))
                except SigningKeyError as exc:
                    log.error("%s; checking with the last good analyst key set", exc)
                except Exception as exc:  # noqa: BLE001 - no file content may stop the chain worker
                    log.error("%s: analyst key set unreadable (%s: %s); checking with the last good set",
                              self.path, type(exc).__name__, exc)
        return self._keys
