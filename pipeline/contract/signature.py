"""Emitter signatures: each event is signed by the emitter that made it. Pure.

    message = b"aiaudit/event/v1\\n" + JCS(the event's JSON form without `emitter_signature`)
    event["emitter_signature"] = {"kid": RFC 7638 thumbprint, "sig": base64url(Ed25519(message))}

The JSON form is the one the chain worker decodes and the record holds (codec.to_json_event of
the Avro datum, every field present), so the SDK signs exactly what a verifier later reads out of
the record, in any language.

An emitter key set is a JWKS whose keys each name the emitter they speak for (`emitter`), and
may carry `not_before` / `not_after` (RFC 3339). A key registered for `billing` may sign events
whose emitter_id is `billing`, or starts with `billing-` or `billing/` (one name per deployment,
one emitter id per process). Two names where one is such a prefix of the other are refused: the
shorter one's key could speak for the longer one.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, cast

from aiaudit.pipeline.errors import SigningKeyError
from aiaudit.pipeline.jcs import canonicalize

SIGNATURE_FIELD = "emitter_signature"
EVENT_SIG_DOMAIN = b"aiaudit/event/v1\n"  # these signatures sign nothing else (records use aiaudit/record/v1)
NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?")
_KID = re.compile(r"[A-Za-z0-9_-]{43}")
_SIG = re.compile(r"[A-Za-z0-9_-]{86}")
MAX_KEYS = 10_000  # bound on one key set


class EventSigner(Protocol):
    @property
    def kid(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    """What checks an Ed25519 signature: aiaudit.pipeline.keys.KeyRing."""

    def __contains__(self, kid: object) -> bool: ...

    def verify(self, kid: Any, sig: bytes, message: bytes) -> bool: ...

    def valid_at(self, kid: Any, ts: str) -> bool: ...


def signed_message(event: dict[str, Any]) -> bytes:
    """The bytes an emitter signs for `event` (its JSON form; the signature member left out)."""
    return EVENT_SIG_DOMAIN + canonicalize({k: v for k, v in event.items() if k != SIGNATURE_FIELD})


def signature_member(signer: EventSigner, event: dict[str, Any]) -> dict[str, str]:
    sig = signer.sign(signed_message(event))
    return {"kid": signer.kid, "sig": base64.urlsafe_b64encode(sig).rstrip(b"=").decode("ascii")}


def speaks_for(name: str, emitter_id: str) -> bool:
    """Whether a key registered for `name` may sign events of `emitter_id`."""
    return emitter_id == name or (emitter_id.startswith(name) and emitter_id[len(name)] in "-/")


def overlapping_names(names: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of distinct names where one's key could speak for the other."""
    distinct = sorted(set(names))
    return [(a, b) for a in distinct for b in distinct if a != b and speaks_for(a, b)]


@dataclass(frozen=True)
class EmitterKeys:
    """The emitter key set a chain worker or a verifier trusts: kid -> emitter name, and the
    keys themselves (with their validity windows) in `ring`."""

    names: dict[str, str]
    ring: Verifier
    required: bool = True  # an event without a signature fails

    def problem(self, event: dict[str, Any], *, at: str | None = None) -> str | None:
        """Why `event` is not authenticated by a registered emitter key, or None when it is.

        `at` (RFC 3339 UTC) is the time the key must be valid at: the chain worker's clock when
        it accepts the event; the event's own occurred_at when a verifier checks a record."""
        member = event.get(SIGNATURE_FIELD)
        if member is None:
            return "the event carries no emitter signature" if self.required else None
        if type(member) is not dict or set(member) != {"kid", "sig"} or type(member["kid"]) is not str \
                or type(member["sig"]) is not str:
            return "emitter_signature is not {kid, sig} strings"
        kid, text = member["kid"], member["sig"]
        if not _KID.fullmatch(kid) or kid not in self.names or kid not in self.ring:
            return f"emitter key {kid[:64]!r} is not in the emitter key set"
        name, emitter_id = self.names[kid], event.get("emitter_id")
        if type(emitter_id) is not str or not speaks_for(name, emitter_id):
            return f"emitter key {kid} is registered for emitter {name!r}, not {str(emitter_id)[:80]!r}"
        if not _SIG.fullmatch(text):
            return "emitter signature is not 64 bytes in base64url"
        try:
            sig = base64.urlsafe_b64decode(text + "==")
            message = signed_message(event)
        except (binascii.Error, ValueError) as exc:  # NotCanonicalizable is a ValueError
            return f"emitter signature cannot be checked: {exc}"[:200]
        if not self.ring.verify(kid, sig, message):
            return f"the signature by emitter key {kid} ({name}) does not verify"
        when = at if at is not None else event.get("occurred_at")
        if type(when) is not str or not self.ring.valid_at(kid, when):
            return f"emitter key {kid} ({name}) is not valid at {str(when)[:40]} (retired, or not yet valid)"
        return None


def parse_key_set(doc: Any, where: str) -> list[dict[str, Any]]:
    """The keys of an emitter key set document, each checked for shape. Raises SigningKeyError
    naming the first problem (the caller builds the KeyRing from them)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise SigningKeyError(f"{where}: an emitter key set is a JSON object with a 'keys' array")
    keys = doc["keys"]
    if len(keys) > MAX_KEYS:
        raise SigningKeyError(f"{where}: {len(keys)} keys, at most {MAX_KEYS}")
    for i, jwk in enumerate(keys):
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" \
                or type(jwk.get("x")) is not str or len(jwk["x"]) != 43:
            raise SigningKeyError(f"{where}: key {i} is not an Ed25519 public JWK (kty OKP, crv Ed25519, x)")
        name = jwk.get("emitter")
        if type(name) is not str or not NAME.fullmatch(name):
            raise SigningKeyError(f"{where}: key {i} needs an 'emitter' name (letters, digits, '_', '-'; "
                                  "at most 64; no '-' at either end)")
        for bound in ("not_before", "not_after"):
            if bound in jwk and type(jwk[bound]) is not str:
                raise SigningKeyError(f"{where}: key {i}: {bound} must be an RFC 3339 time")
    clashes = overlapping_names(k["emitter"] for k in keys)
    if clashes:
        a, b = clashes[0]
        raise SigningKeyError(f"{where}: emitter names {a!r} and {b!r} overlap (a key for {a!r} could sign as "
                              f"{b!r}); rename one")
    return cast(list[dict[str, Any]], keys)


def utc_now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
