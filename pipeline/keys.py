"""Ed25519 signing keys, RFC 7638 key ids and the published JWKS.

A keys directory holds one PEM (PKCS#8) private key per `<kid>.key`, mode 0600, and
`jwks.json`, the public keys ever used. Rotation adds a key and keeps every old public
key in the JWKS, so older records keep verifying (invariant 7).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NewType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

try:  # the server install; the light (emitter SDK) install signs only and verifies with OpenSSL
    from nacl import bindings as nacl_bindings
    from nacl.exceptions import BadSignatureError
except ImportError:  # pragma: no cover - exercised by the light install only
    nacl_bindings = None  # type: ignore[assignment]  # absent on the light install: OpenSSL verifies

from aiaudit.pipeline.errors import SigningKeyError
from aiaudit.pipeline.jcs import canonicalize

JWKS_FILE = "jwks.json"
KeyId = NewType("KeyId", str)  # RFC 7638 thumbprint, base64url


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _utc_text(value: Any, default: str) -> str:
    """A validity bound as the record format's RFC 3339 UTC text, so bounds and record times compare as text."""
    if value is None:
        return default
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise SigningKeyError(f"key validity bound {value!r} is not an RFC 3339 time") from exc
    if moment.tzinfo is None:
        raise SigningKeyError(f"key validity bound {value!r} needs a time zone")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    return {**jwk, "kid": thumbprint(jwk), "alg": "EdDSA", "use": "sig"}


def thumbprint(jwk: dict[str, str]) -> KeyId:
    """RFC 7638 §3: SHA-256 over the JCS of the required members, base64url."""
    required = {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}
    return KeyId(_b64url(hashlib.sha256(canonicalize(required)).digest()))


@dataclass(frozen=True)
class Ed25519Signer:
    private_key: Ed25519PrivateKey
    kid: KeyId

    @classmethod
    def from_private_key(cls, key: Ed25519PrivateKey) -> "Ed25519Signer":
        return cls(key, KeyId(public_jwk(key.public_key())["kid"]))

    @classmethod
    def generate(cls) -> "Ed25519Signer":
        """A new key whose kid does not start with '-': a command line (`aiaudit keys emitter retire
        KID`) would take such a kid for an option, and a shell `rm` for one too. One key in 64 is
        drawn again; the key is as random as any."""
        while True:
            signer = cls.from_private_key(Ed25519PrivateKey.generate())
            if not signer.kid.startswith("-"):
                return signer

    _sodium_secret: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if nacl_bindings is not None:  # libsodium's signing: 1.4x OpenSSL's here (bench/pipeline_bench.py)
            seed = self.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                  serialization.NoEncryption())
            object.__setattr__(self, "_sodium_secret", nacl_bindings.crypto_sign_seed_keypair(seed)[1])

    def sign(self, message: bytes) -> bytes:
        """Ed25519 (deterministic: libsodium and OpenSSL give the same bytes; a test holds them to it)."""
        if self._sodium_secret is None:
            return self.private_key.sign(message)
        return nacl_bindings.crypto_sign(message, self._sodium_secret)[:64]

    def jwk(self) -> dict[str, str]:
        return public_jwk(self.private_key.public_key())


class KeyRing:
    """Public keys by kid, for verification. Built from a JWKS document."""

    def __init__(self, keys: dict[KeyId, Ed25519PublicKey],
                 windows: dict[KeyId, tuple[str, str]] | None = None, emitters: Any = None,
                 analysts: Any = None) -> None:
        self._keys = keys
        self._raw = {kid: _raw_public(k) for kid, k in keys.items()}
        self._windows = windows or {}  # kid -> [not_before, not_after) as RFC 3339 UTC text
        # The emitter key set (aiaudit.pipeline.contract.signature.EmitterKeys) a verifier holds records'
        # events to, or None: emitter signatures are then not checked.
        self.emitters = emitters
        # The analyst key set (aiaudit.pipeline.contract.analysts.AnalystKeys) status changes are held
        # to, or None: analysts' signatures are then not checked.
        self.analysts = analysts

    def kids(self) -> list[str]:
        """The record keys' ids, sorted."""
        return sorted(str(kid) for kid in self._keys)

    def with_emitters(self, emitters: Any) -> "KeyRing":
        return KeyRing(self._keys, self._windows, emitters, self.analysts)

    def with_analysts(self, analysts: Any) -> "KeyRing":
        return KeyRing(self._keys, self._windows, self.emitters, analysts)

    @classmethod
    def from_jwks(cls, jwks: dict[str, Any]) -> "KeyRing":
        """Keys of a JWKS. A key may carry `not_before` / `not_after` (RFC 3339): a record whose
        time lies outside them is refused (a trust file pins keys with their validity)."""
        keys: dict[KeyId, Ed25519PublicKey] = {}
        windows: dict[KeyId, tuple[str, str]] = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                continue
            kid = thumbprint(jwk)
            if jwk.get("kid", kid) != kid:
                raise SigningKeyError(f"JWKS key {jwk.get('kid')!r}: kid is not its RFC 7638 thumbprint {kid}")
            keys[kid] = Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))
            if "not_before" in jwk or "not_after" in jwk:
                windows[kid] = (_utc_text(jwk.get("not_before"), "0000"), _utc_text(jwk.get("not_after"), "9999"))
        return cls(keys, windows)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as raw public keys (verification workers in other processes get the same ring)."""
        return (_keyring_from_raw, (dict(self._raw), dict(self._windows), self.emitters, self.analysts))

    def valid_at(self, kid: KeyId, ts: str) -> bool:
        """Whether a record stamped `ts` (RFC 3339 UTC, the record format's) falls in kid's window."""
        window = self._windows.get(kid)
        return window is None or window[0] <= ts < window[1]

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, kid: KeyId, sig: bytes, message: bytes) -> bool:
        """True when `sig` is kid's valid signature of `message`. `kid` must be known.

        Checked with libsodium (PyNaCl), 1.5 times as fast as OpenSSL's Ed25519 verify on the
        machines measured and at least as strict: it also refuses small-order keys and points
        and a non-canonical S. Keys are signed and generated with `cryptography` (OpenSSL), and
        tests/integration/independent_verify.py checks the same records with OpenSSL."""
        if len(sig) != 64:
            return False
        if nacl_bindings is None:
            try:
                self._keys[kid].verify(sig, message)
            except InvalidSignature:
                return False
            return True
        try:
            nacl_bindings.crypto_sign_open(sig + message, self._raw[kid])
        except (BadSignatureError, ValueError):
            return False
        return True


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _keyring_from_raw(raw: dict[KeyId, bytes], windows: dict[KeyId, tuple[str, str]], emitters: Any = None,
                      analysts: Any = None) -> KeyRing:
    return KeyRing({kid: Ed25519PublicKey.from_public_bytes(b) for kid, b in raw.items()}, windows, emitters, analysts)


# --- files (the I/O edge of key handling) ---------------------------------------------


def generate_key(keys_dir: Path) -> tuple[Path, KeyId]:
    """Write a new private key (0600) into keys_dir and add its public key to jwks.json; create the
    checkpoint key (keys_dir/checkpoint/) too if there is none (it is not rotated with record keys)."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    signer = Ed25519Signer.generate()
    path = keys_dir / f"{signer.kid}.key"
    _write_private_key(path, signer.private_key)
    ensure_checkpoint_key(keys_dir / CHECKPOINT_DIR / CHECKPOINT_KEY)
    jwks = read_jwks(keys_dir) if (keys_dir / JWKS_FILE).exists() else {"keys": []}
    jwks["keys"].append(signer.jwk())
    tmp = keys_dir / (JWKS_FILE + ".tmp")
    tmp.write_text(json.dumps(jwks, indent=2) + "\n")
    tmp.replace(keys_dir / JWKS_FILE)
    return path, signer.kid


def load_signer(path: Path) -> Ed25519Signer:
    """Read a PEM Ed25519 private key. Refuses files readable by group or others."""
    return Ed25519Signer.from_private_key(_load_private_key(path))


def _write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def _check_folder(folder: Path) -> None:
    """A folder holding keys must not be writable by group or others: whoever can write it can
    swap a key file or the JWKS beside it."""
    mode = folder.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SigningKeyError(f"{folder}: the keys folder is writable by others (mode {oct(mode & 0o777)}), so a key "
                              f"could be swapped; fix it with: chmod go-w {folder}")


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        _check_folder(path.parent)
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            raise SigningKeyError(f"{path}: a private key must be a file, not a symbolic link (point the setting at "
                                  "the file itself)")
        mode = info.st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SigningKeyError(f"{path}: private key is readable or writable by others (mode {oct(mode & 0o777)}); "
                                  f"fix it with: chmod 600 {path}")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read signing key: {exc.strerror}") from exc
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return key


def active_key_file(keys_dir: Path, key_file: Path | None) -> Path:
    """The configured key file, or the newest key in keys_dir."""
    if key_file is not None:
        return key_file
    if keys_dir.is_dir() and not os.access(keys_dir, os.R_OK | os.X_OK):
        raise SigningKeyError(f"{keys_dir}: cannot read the keys folder (permission denied): run as its owner "
                              "(docker compose: AIAUDIT_UID=$(id -u) AIAUDIT_GID=$(id -g))")
    candidates = sorted(keys_dir.glob("*.key"), key=lambda p: p.stat().st_mtime_ns) if keys_dir.is_dir() else []
    if not candidates:
        raise SigningKeyError(f"no signing key in {keys_dir}; run `aiaudit keys generate`")
    return candidates[-1]


def read_jwks(keys_dir_or_file: Path) -> dict[str, Any]:
    path = keys_dir_or_file / JWKS_FILE if keys_dir_or_file.is_dir() else keys_dir_or_file
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read JWKS: {exc.strerror}; run `aiaudit keys generate`") from exc
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not a JSON JWKS: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise SigningKeyError(f"{path}: a JWKS needs a 'keys' array")
    return doc


# --- the checkpoint key: signs C2SP checkpoints, apart from the record keys ------------------

CHECKPOINT_DIR = "checkpoint"  # a subfolder: active_key_file never takes it for a record key
CHECKPOINT_KEY = "checkpoint.key"
CHECKPOINT_PUB = "checkpoint.pub"  # base64 of the raw 32-byte public key, for pinning


def checkpoint_key_file(keys_dir: Path, configured: Path | None) -> Path:
    return configured if configured is not None else keys_dir / CHECKPOINT_DIR / CHECKPOINT_KEY


def _ensure_raw_key(path: Path, pub_name: str) -> bool:
    """Create an Ed25519 key at `path` (0600, folder 0700) and its public key (base64 of the raw 32
    bytes) as `pub_name` beside it, unless it exists. Returns True when it was created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    _write_private_key(path, key)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    path.with_name(pub_name).write_text(base64.b64encode(raw).decode() + "\n")
    return True


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ensure_checkpoint_key(path: Path) -> bool:
    """Create the checkpoint key at `path` and its checkpoint.pub unless it exists."""
    return _ensure_raw_key(path, CHECKPOINT_PUB)


def load_checkpoint_key(path: Path) -> Ed25519PrivateKey:
    """The checkpoint private key. Raises SigningKeyError saying how to create one."""
    if not path.exists():
        raise SigningKeyError(f"no checkpoint key at {path}; run `aiaudit keys generate` (it creates one if missing)")
    return _load_private_key(path)


def read_checkpoint_public_key(path: Path, *, pub_name: str = CHECKPOINT_PUB, what: str = "checkpoint") -> bytes:
    """The raw public key from a .pub file (base64) or beside a checkpoint key. Raises SigningKeyError."""
    pub = path if path.suffix == ".pub" else path.with_name(pub_name)
    try:
        raw = base64.b64decode(pub.read_text().strip(), validate=True)
    except OSError as exc:
        raise SigningKeyError(f"{pub}: cannot read the {what} public key: {exc.strerror}") from exc
    except ValueError as exc:
        raise SigningKeyError(f"{pub}: not base64") from exc
    if len(raw) != 32:
        raise SigningKeyError(f"{pub}: an Ed25519 public key is 32 bytes, not {len(raw)}")
    return raw


# --- the operator key: seals exports (and later reports), apart from every worker's keys -----

OPERATOR_DIR = "operator"
OPERATOR_KEY = "operator.key"
OPERATOR_PUB = "operator.pub"


def operator_key_file(keys_dir: Path, configured: Path | None) -> Path:
    """The configured operator key, else `operator/operator.key` beside (not inside) the keys
    folder: the chain worker's host never needs it."""
    return configured if configured is not None else keys_dir.parent / OPERATOR_DIR / OPERATOR_KEY


def ensure_operator_key(path: Path) -> bool:
    return _ensure_raw_key(path, OPERATOR_PUB)


def load_operator_key(path: Path) -> Ed25519PrivateKey:
    """The operator's private key. Raises SigningKeyError saying how to create one."""
    if not path.exists():
        raise SigningKeyError(f"no operator key at {path}: `aiaudit keys operator new` creates one (it seals exports; "
                              "keep it apart from the workers' keys)")
    return _load_private_key(path)


def read_operator_public_key(path: Path) -> bytes:
    return read_checkpoint_public_key(path, pub_name=OPERATOR_PUB, what="operator")


# --- the scorer key: signs findings, so that the delivery agent delivers only genuine ones ------

SCORER_DIR = "scorer"
SCORER_KEY = "scorer.key"
SCORER_PUB = "scorer.pub"


def scorer_key_file(keys_dir: Path, configured: Path | None) -> Path:
    """The configured scorer key, else `scorer/scorer.key` beside the keys folder."""
    return configured if configured is not None else keys_dir.parent / SCORER_DIR / SCORER_KEY


def load_or_create_scorer_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The scoring worker's key (created with its scorer.pub when missing). Returns (key, created)."""
    created = _ensure_raw_key(path, SCORER_PUB)
    return _load_private_key(path), created


def read_scorer_public_key(path: Path) -> bytes:
    return read_checkpoint_public_key(path, pub_name=SCORER_PUB, what="scorer")
