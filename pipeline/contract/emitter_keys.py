"""Emitter keys on disk (the I/O edge of pipeline/contract/signature.py).

    <keys_dir>/emitters/jwks.json          the emitter key set: public keys, each naming its emitter
    <keys_dir>/emitters/<name>.<kid8>.key  a private key made here (0600), for an emitter on this host

An emitter on another host makes its key there (`aiaudit keys emitter new NAME --dir DIR` on that
host) and the operator registers the printed public JWK (`aiaudit keys emitter add NAME FILE`).
Rotation adds a key for the same name and retires the old one (`not_after`): records signed
before then keep verifying, events signed with it afterwards are refused.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, cast

from aiaudit.pipeline.contract.signature import NAME, EmitterKeys, parse_key_set
from aiaudit.pipeline.errors import SigningKeyError
from aiaudit.pipeline.files import file_stamp
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

EMITTERS_DIR = "emitters"
KEY_SET_FILE = "jwks.json"


def key_set_file(settings: Settings) -> Path:
    return settings.signing.emitter_keys_file or settings.signing.keys_dir / EMITTERS_DIR / KEY_SET_FILE


def emitter_name(key_file: Path) -> str:
    """The emitter a key file speaks for: its name up to the first '.' (`billing.Ab3dE9fG.key`)."""
    name = key_file.name.split(".")[0]
    if not NAME.fullmatch(name):
        raise SigningKeyError(f"{key_file}: an emitter key file is named <emitter>.<anything>.key, and {name!r} is "
                              "not an emitter name (letters, digits, '_', '-')")
    return name


def load_emitter_signer(key_file: Path) -> tuple[Ed25519Signer, str]:
    """The emitter's private key and the name it is registered under. Raises SigningKeyError."""
    return load_signer(key_file), emitter_name(key_file)


MAX_KEY_SET_BYTES = 1 << 20  # 256 keys of a few hundred bytes each fit many times over


def read_key_set(path: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """The emitter key set document at `path`, shape-checked. Raises SigningKeyError for anything
    else: missing, unreadable, over 1 MiB, not UTF-8, not JSON, wrong shape."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_KEY_SET_BYTES + 1)
    except FileNotFoundError:
        if missing_ok:
            return {"keys": []}
        raise SigningKeyError(f"no emitter key set at {path}: register each emitter's key with `aiaudit keys emitter "
                              "new NAME` (or `add`), or let the chain worker accept unsigned events "
                              "(AIAUDIT_CHAIN__REQUIRE_EMITTER_SIGNATURE=false)") from None
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the emitter key set: {exc.strerror}") from exc
    if len(raw) > MAX_KEY_SET_BYTES:
        raise SigningKeyError(f"{path}: over {MAX_KEY_SET_BYTES} bytes: not an emitter key set")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SigningKeyError(f"{path}: not UTF-8 text (byte {exc.start}): not an emitter key set") from None
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not JSON: {exc}") from exc
    parse_key_set(doc, str(path))  # a JSON object with a 'keys' list, or it raised
    return cast(dict[str, Any], doc)


def emitter_keys_from(doc: dict[str, Any], where: str, *, required: bool = True) -> EmitterKeys:
    """An emitter key set document (already read) as the checker; every key's kid must be its thumbprint."""
    keys = parse_key_set(doc, where)
    public = [{k: v for k, v in jwk.items() if k != "emitter"} for jwk in keys]
    try:
        ring = KeyRing.from_jwks({"keys": public})
    except (ValueError, TypeError, KeyError) as exc:
        raise SigningKeyError(f"{where}: {exc}") from exc
    return EmitterKeys({thumbprint(jwk): jwk["emitter"] for jwk in keys}, ring, required)


def load_emitter_keys(path: Path, *, required: bool = True) -> EmitterKeys:
    return emitter_keys_from(read_key_set(path), str(path), required=required)


def _write_key_set(path: Path, doc: dict[str, Any]) -> None:
    parse_key_set(doc, str(path))  # never write a set that would not load
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_folder(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def register_emitter_key(set_file: Path, name: str, jwk: dict[str, Any]) -> str:
    """Add a public key for emitter `name` to the key set. Returns its kid. Raises SigningKeyError."""
    if not NAME.fullmatch(name):
        raise SigningKeyError(f"emitter name {name!r}: letters, digits, '_' and '-', at most 64, no '-' at either end")
    public: dict[str, str] = {k: jwk[k] for k in ("kty", "crv", "x") if isinstance(jwk.get(k), str)}
    doc = read_key_set(set_file, missing_ok=True)
    entry = {**public, "emitter": name}
    parse_key_set({"keys": [entry]}, "the new key")
    kid = thumbprint(public)
    for existing in doc["keys"]:
        if thumbprint(existing) == kid:
            if existing["emitter"] != name:
                raise SigningKeyError(f"key {kid} is already registered for emitter {existing['emitter']!r}")
            return kid
    doc["keys"].append({**entry, "kid": kid, "alg": "EdDSA", "use": "sig"})
    _write_key_set(set_file, doc)
    return kid


def new_emitter_key(folder: Path, name: str, set_file: Path | None) -> tuple[Path, str, dict[str, str]]:
    """Make a key for emitter `name` in `folder` (0600) and register it in `set_file` (None: only
    make it, for registering elsewhere). Returns (private key file, kid, public JWK)."""
    if not NAME.fullmatch(name):
        raise SigningKeyError(f"emitter name {name!r}: letters, digits, '_' and '-', at most 64, no '-' at either end")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_folder(folder)
    signer = Ed25519Signer.generate()
    if set_file is not None:  # refuse before writing anything (a name that overlaps another, a bad set)
        doc = read_key_set(set_file, missing_ok=True)
        parse_key_set({"keys": [*doc["keys"], {**signer.jwk(), "emitter": name}]}, str(set_file))
    path = folder / f"{name}.{signer.kid[:8]}.key"
    _write_private_key(path, signer.private_key)
    jwk = signer.jwk()
    if set_file is not None:
        register_emitter_key(set_file, name, jwk)
    return path, signer.kid, jwk


def retire_emitter_key(set_file: Path, kid: str, at: str) -> str:
    """Set the key's not_after to `at` (RFC 3339): events it signs from then on are refused.
    Returns the emitter's name."""
    doc = read_key_set(set_file)
    for jwk in doc["keys"]:
        if thumbprint(jwk) == kid:
            jwk["not_after"] = _utc_text(at, at)
            _write_key_set(set_file, doc)
            return str(jwk["emitter"])
    raise SigningKeyError(f"no key {kid} in {set_file}")


class EmitterKeysFile:
    """The emitter key set a running chain worker checks events with, read again when the file
    changes (a newly registered emitter needs no restart). A file that stops loading keeps the
    last good set, and says so in the log."""

    def __init__(self, path: Path, *, required: bool) -> None:
        self.path = path
        self.required = required
        self._stamp: tuple[int, int] | None = None
        self._keys: EmitterKeys | None = None
        self.doc: dict[str, Any] | None = None  # the key set document behind current() (recorded as evidence)
        if required:
            self.doc = read_key_set(path)
            self._keys = emitter_keys_from(self.doc, str(path), required=True)  # refuse to start without one
            self._stamp = file_stamp(self.path)
        self.current()

    def current(self) -> EmitterKeys | None:
        """The set to check with; None when signatures are optional and there is no set."""
        stamp = file_stamp(self.path)
        if stamp != self._stamp:
            self._stamp = stamp
            if stamp is None:
                if not self.required:
                    self._keys = self.doc = None
                log.error("emitter key set %s is gone; %s", self.path,
                          "checking with the last one read" if self._keys else "events are not checked")
            else:
                try:
                    doc = read_key_set(self.path)
                    self._keys, self.doc = emitter_keys_from(doc, str(self.path), required=self.required), doc
                    log.info("emitter key set %s: %d key(s)", self.path, len(self._keys.names))
                except SigningKeyError as exc:
                    log.error("%s; checking with the last good emitter key set", exc)
                except Exception as exc:  # noqa: BLE001 - no file content may stop the chain worker
                    log.error("%s: emitter key set unreadable (%s: %s); checking with the last good set",
                              self.path, type(exc).__name__, exc)
        return self._keys
