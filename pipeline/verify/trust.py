"""The auditor's pinned trust file: the keys a verification trusts, obtained out of band, never the
key set stored next to the private keys (that set is changeable by the party being checked).

    {
      "record_keys": {"keys": [<Ed25519 JWK, optionally with "not_before"/"not_after" RFC 3339>]},
      "checkpoint_keys": ["<base64 of a 32-byte checkpoint public key>",
                          {"key": "<base64>", "not_before": "<RFC 3339>", "not_after": "<RFC 3339>"}, ...],
      "witnesses": [{"vkey": "<name+keyid+base64>", "url": "https://witness.example/",
                     "not_before": "<RFC 3339>", "not_after": "<RFC 3339>"}],
      "min_cosignatures": 1,
      "max_checkpoint_age": "15m",
      "emitter_keys": {"keys": [<Ed25519 JWK with "emitter": "<name>", optionally a window>]},
      "require_emitter_signatures": true,
      "analyst_keys": {"keys": [<Ed25519 JWK with "analyst": "<name>" or "console": "<name>">]},
      "operator_keys": ["<base64 of a 32-byte operator public key: seals exports>"]
    }

Record keys outside their window fail (`key_out_of_window`); several checkpoint keys allow a
rotation. Windows of checkpoint and witness keys are judged on signed times (pipeline/verify/
tree.py): a log timestamp or cosignature outside its key's window does not count, and a
checkpoint signed only by windowed keys needs a signed time inside a window; with `min_cosignatures` N every chain needs N pinned witnesses' stored cosignatures
(`unwitnessed` otherwise), and every witness with a `url` is asked what it last cosigned. With
`max_checkpoint_age` every chain's newest signed time must be that recent at the end of the
window (`stale` otherwise: the tail rule). With `emitter_keys` every signed event must carry a valid
signature by a key registered for its emitter, and with `require_emitter_signatures` every event
must be signed (`unauthenticated_emitter` otherwise). With `analyst_keys` every chained status
change must be signed by a key of the analyst it names (or a console's, for who was signed in to it:
`unauthenticated_analyst` otherwise).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiaudit.pipeline.chain.note import SIG_COSIGNATURE_V1, NoteError, Verifier
from aiaudit.pipeline.contract.analyst_keys import analyst_keys_from
from aiaudit.pipeline.contract.emitter_keys import emitter_keys_from
from aiaudit.pipeline.errors import ConfigError, SigningKeyError
from aiaudit.pipeline.keys import KeyRing
from aiaudit.pipeline.timespec import parse_duration

MAX_TRUST_BYTES = 1 << 20


class _Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    not_before: str | None = Field(default=None, max_length=40)
    not_after: str | None = Field(default=None, max_length=40)


class _WitnessSpec(_Window):
    vkey: str = Field(min_length=10, max_length=400)
    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000)


class _CheckpointKeySpec(_Window):
    key: str = Field(min_length=40, max_length=60)


class _TrustSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    record_keys: dict[str, Any]
    checkpoint_keys: list[str | _CheckpointKeySpec] = Field(min_length=1, max_length=64)
    witnesses: list[_WitnessSpec] = Field(default_factory=list, max_length=64)
    min_cosignatures: int = Field(default=0, ge=0, le=64)
    max_checkpoint_age: str | None = Field(default=None, max_length=20)
    emitter_keys: dict[str, Any] | None = None
    require_emitter_signatures: bool = False
    analyst_keys: dict[str, Any] | None = None
    operator_keys: list[str] = Field(default_factory=list, max_length=64)


@dataclass(frozen=True)
class Trust:
    """Everything a verification trusts, from one place (a trust file, or the keys the operator
    pointed at): verification takes this, never its parts one by one."""

    keyring: KeyRing
    checkpoint_keys: tuple[bytes, ...] = ()
    witnesses: tuple[tuple[Verifier, str | None], ...] = ()  # (pinned key, URL to ask live, if any)
    min_cosignatures: int = 0
    max_checkpoint_age_s: int | None = None  # the tail rule (verify --max-age), when the file sets it
    windows: dict[bytes, tuple[int, int]] = field(default_factory=dict)  # checkpoint/witness key -> unix [from, to)
    operator_keys: tuple[bytes, ...] = ()  # keys that may seal an export's header


def _window(spec: _Window, where: str) -> tuple[int, int] | None:
    if spec.not_before is None and spec.not_after is None:
        return None
    bounds = []
    for name, value, default in (("not_before", spec.not_before, 0), ("not_after", spec.not_after, 2**63 - 1)):
        if value is None:
            bounds.append(default)
            continue
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"{where}.{name}: {value!r} is not an RFC 3339 time") from exc
        if moment.tzinfo is None:
            raise ConfigError(f"{where}.{name}: {value!r} needs a time zone")
        bounds.append(int(moment.timestamp()))
    if bounds[0] >= bounds[1]:
        raise ConfigError(f"{where}: not_before must be before not_after")
    return bounds[0], bounds[1]


def _raw_key(b64: str, where: str) -> bytes:
    """A pinned Ed25519 public key: base64 of its raw 32 bytes. Raises ConfigError naming where."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError as exc:
        raise ConfigError(f"{where} is not base64") from exc
    if len(raw) != 32:
        raise ConfigError(f"{where} is {len(raw)} bytes, not 32")
    return raw


def parse_trust(text: str, source: str) -> Trust:
    """Parse a trust file. Raises ConfigError naming what is wrong (nothing is trusted by default)."""
    if len(text) > MAX_TRUST_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_TRUST_BYTES} bytes")
    try:
        spec = _TrustSpec.model_validate(json.loads(text))
    except ValueError as exc:  # json.JSONDecodeError and pydantic's ValidationError are ValueErrors
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()) \
            if isinstance(exc, ValidationError) else str(exc)
        raise ConfigError(f"{source}: not a trust file: {detail}") from exc
    try:
        keyring = KeyRing.from_jwks(spec.record_keys)
    except (SigningKeyError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: record_keys: {exc}") from exc
    if not len(keyring):
        raise ConfigError(f"{source}: record_keys holds no Ed25519 key")
    if spec.emitter_keys is not None:
        try:
            keyring = keyring.with_emitters(emitter_keys_from(spec.emitter_keys, f"{source}: emitter_keys",
                                                              required=spec.require_emitter_signatures))
        except SigningKeyError as exc:
            raise ConfigError(str(exc)) from exc
    elif spec.require_emitter_signatures:
        raise ConfigError(f"{source}: require_emitter_signatures needs emitter_keys (the emitters' public keys)")
    if spec.analyst_keys is not None:
        try:
            keyring = keyring.with_analysts(analyst_keys_from(spec.analyst_keys, f"{source}: analyst_keys"))
        except SigningKeyError as exc:
            raise ConfigError(str(exc)) from exc
    operator_keys = [_raw_key(b64, f"{source}: operator_keys[{i}]") for i, b64 in enumerate(spec.operator_keys)]
    keys, windows = [], {}
    for i, entry in enumerate(spec.checkpoint_keys):
        raw = _raw_key(entry if isinstance(entry, str) else entry.key, f"{source}: checkpoint_keys[{i}]")
        keys.append(raw)
        window = None if isinstance(entry, str) else _window(entry, f"{source}: checkpoint_keys[{i}]")
        if window is not None:
            windows[raw] = window
    witnesses = []
    for i, w in enumerate(spec.witnesses):
        try:
            v = Verifier.from_vkey(w.vkey)
        except NoteError as exc:
            raise ConfigError(f"{source}: witnesses[{i}]: {exc}") from exc
        if v.sig_type != SIG_COSIGNATURE_V1:
            raise ConfigError(f"{source}: witnesses[{i}] is not a cosignature (0x04) key")
        witnesses.append((v, w.url))
        window = _window(w, f"{source}: witnesses[{i}]")
        if window is not None:
            windows[v.public_key] = window
    if spec.min_cosignatures > len({v.name for v, _ in witnesses}):
        raise ConfigError(f"{source}: min_cosignatures {spec.min_cosignatures} is more than the witnesses pinned")
    max_age = None
    if spec.max_checkpoint_age is not None:
        try:
            max_age = int(parse_duration(spec.max_checkpoint_age).total_seconds())
        except ValueError as exc:
            raise ConfigError(f"{source}: max_checkpoint_age: {exc}") from exc
    return Trust(keyring, tuple(keys), tuple(witnesses), spec.min_cosignatures, max_age, windows,
                 tuple(operator_keys))


def trust_document(record_jwks: dict[str, Any], checkpoint_keys: Sequence[bytes], *,
                   operator_keys: Sequence[bytes] = (), emitter_jwks: dict[str, Any] | None = None,
                   analyst_jwks: dict[str, Any] | None = None,
                   witnesses: Sequence[tuple[str, str | None]] = (),
                   max_checkpoint_age: str | None = None) -> dict[str, Any]:
    """A trust file pinning these public keys (`aiaudit trust init`): every record, checkpoint and
    operator key given, the emitter key set (signatures then required), and the witnesses, of which
    one cosignature is then required. The result parses with parse_trust (checked by the caller)."""
    doc: dict[str, Any] = {
        "record_keys": {"keys": [{k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "kid", "not_before",
                                                                         "not_after")}
                                 for jwk in record_jwks.get("keys", [])]},
        "checkpoint_keys": [base64.b64encode(k).decode("ascii") for k in checkpoint_keys],
    }
    if operator_keys:
        doc["operator_keys"] = [base64.b64encode(k).decode("ascii") for k in operator_keys]
    if emitter_jwks is not None and emitter_jwks.get("keys"):
        doc["emitter_keys"] = emitter_jwks
        doc["require_emitter_signatures"] = True
    if analyst_jwks is not None and analyst_jwks.get("keys"):
        doc["analyst_keys"] = analyst_jwks
    if witnesses:
        doc["witnesses"] = [{"vkey": vkey, **({"url": url} if url else {})} for vkey, url in witnesses]
        doc["min_cosignatures"] = 1
    if max_checkpoint_age is not None:
        doc["max_checkpoint_age"] = max_checkpoint_age
    return doc
