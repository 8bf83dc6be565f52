"""The auditor's pinned trust file: the keys a verification trusts, obtained out of band, never the
key set stored next to the private keys (that set is changeable by the party being checked).

    {
      "record_keys": {"keys": [<Ed25519 JWK, optionally with "not_before"/"not_after" RFC 3339>]},
      "checkpoint_keys": ["<base64 of a 32-byte checkpoint public key>", ...],
      "witnesses": [{"vkey": "<name+keyid+base64>", "url": "https://witness.example/"}],
      "min_cosignatures": 1,
      "max_checkpoint_age": "15m"
    }

Record keys outside their window fail (`key_out_of_window`); several checkpoint keys allow a
rotation; with `min_cosignatures` N every chain needs N pinned witnesses' stored cosignatures
(`unwitnessed` otherwise), and every witness with a `url` is asked what it last cosigned. With
`max_checkpoint_age` every chain's newest signed time must be that recent at the end of the
window (`stale` otherwise: the tail rule).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.chain.keys import KeyRing
from pipeline.chain.note import SIG_COSIGNATURE_V1, NoteError, Verifier
from pipeline.errors import ConfigError, SigningKeyError
from pipeline.timespec import parse_duration

MAX_TRUST_BYTES = 1 << 20


class _WitnessSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vkey: str = Field(min_length=10, max_length=400)
    url: str | None = Field(None, pattern=r"^https?://", max_length=2000)


class _TrustSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    record_keys: dict[str, Any]
    checkpoint_keys: list[str] = Field(min_length=1, max_length=64)
    witnesses: list[_WitnessSpec] = Field(default_factory=list, max_length=64)
    min_cosignatures: int = Field(0, ge=0, le=64)
    max_checkpoint_age: str | None = Field(None, max_length=20)


@dataclass(frozen=True)
class Trust:
    keyring: KeyRing
    checkpoint_keys: tuple[bytes, ...]
    witnesses: tuple[tuple[Verifier, str | None], ...]
    min_cosignatures: int
    max_checkpoint_age_s: int | None = None  # the tail rule (verify --max-age), when the file sets it


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
    keys = []
    for i, b64 in enumerate(spec.checkpoint_keys):
        try:
            raw = base64.b64decode(b64, validate=True)
        except ValueError as exc:
            raise ConfigError(f"{source}: checkpoint_keys[{i}] is not base64") from exc
        if len(raw) != 32:
            raise ConfigError(f"{source}: checkpoint_keys[{i}] is {len(raw)} bytes, not 32")
        keys.append(raw)
    witnesses = []
    for i, w in enumerate(spec.witnesses):
        try:
            v = Verifier.from_vkey(w.vkey)
        except NoteError as exc:
            raise ConfigError(f"{source}: witnesses[{i}]: {exc}") from exc
        if v.sig_type != SIG_COSIGNATURE_V1:
            raise ConfigError(f"{source}: witnesses[{i}] is not a cosignature (0x04) key")
        witnesses.append((v, w.url))
    if spec.min_cosignatures > len({v.name for v, _ in witnesses}):
        raise ConfigError(f"{source}: min_cosignatures {spec.min_cosignatures} is more than the witnesses pinned")
    max_age = None
    if spec.max_checkpoint_age is not None:
        try:
            max_age = int(parse_duration(spec.max_checkpoint_age).total_seconds())
        except ValueError as exc:
            raise ConfigError(f"{source}: max_checkpoint_age: {exc}") from exc
    return Trust(keyring, tuple(keys), tuple(witnesses), spec.min_cosignatures, max_age)
