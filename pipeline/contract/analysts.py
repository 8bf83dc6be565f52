"""Analysts' signatures on status changes (acknowledge, resolve, reopen) and on access records
(pipeline/contract/access.py): who acted, or who read, is proven by a key, not stated by whoever
wrote to the topic. Pure.

    message = <domain> + JCS(the message without `signature`)
    message["signature"] = {"kid": RFC 7638 thumbprint, "sig": base64url(Ed25519(message))}

The domain names what is signed, so a signature of one never passes for the other:
`aiaudit/status/v1\\n` for a status change, `aiaudit/access/v1\\n` for an access record.

An analyst key set is a JWKS whose keys each name the analyst they belong to (`analyst`, e.g.
`alice@acme.example`): such a key signs changes whose `by` is that analyst. A key that names a
console instead (`console`, e.g. `soc-console`) is the console's key: it signs for the person
signed in to it (`by`), and every change it signs says so (`via`: the console's name). Keys may
carry `not_before` / `not_after` (RFC 3339): retiring a key ends what it may sign from then on,
never what it signed before.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, cast

import orjson

from aiaudit.pipeline.contract.signature import Verifier
from aiaudit.pipeline.errors import SigningKeyError
from aiaudit.pipeline.jcs import canonicalize

STATUS_SIG_DOMAIN = b"aiaudit/status/v1\n"  # these signatures sign nothing else
ACCESS_SIG_DOMAIN = b"aiaudit/access/v1\n"
ERASURE_SIG_DOMAIN = b"aiaudit/erasure/v1\n"
SIGNATURE_FIELD = "signature"
# An analyst's or a console's name: an e-mail address or an account name.
ANALYST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._@+-]{0,126}[A-Za-z0-9])?")
_KID = re.compile(r"[A-Za-z0-9_-]{43}")
_SIG = re.compile(r"[A-Za-z0-9_-]{86}")
MAX_KEYS = 10_000
MAX_CHANGE_BYTES = 16 * 1024  # a status change: uid, status, who, when, a note of at most 4096 characters
MAX_ACCESS_BYTES = 16 * 1024  # an access record: who, when, what (at most 4096 characters), rows, digest


@dataclass(frozen=True)
class SignedKind:
    """An evidence kind whose messages a key of the analyst key set signs (chain/kinds.py names them)."""

    domain: bytes
    max_bytes: int
    noun: str
    refusal: str  # the dead-letter reason of one no registered key signed


# Keyed by the kind's name in chain/kinds.py (tests/unit/contract/test_access.py holds them equal).
SIGNED_KINDS = {
    "status_change": SignedKind(STATUS_SIG_DOMAIN, MAX_CHANGE_BYTES, "status change", "unauthenticated_analyst"),
    "access": SignedKind(ACCESS_SIG_DOMAIN, MAX_ACCESS_BYTES, "access record", "unauthenticated_reader"),
    "erasure": SignedKind(ERASURE_SIG_DOMAIN, MAX_ACCESS_BYTES, "erasure record", "unauthenticated_eraser"),
}


class StatusSigner:
    """What signs a status change: a key and the analyst (or console) it is registered for."""

    def __init__(self, key: Any, name: str, *, console: bool = False) -> None:
        if not ANALYST_NAME.fullmatch(name):
            raise SigningKeyError(f"analyst name {name[:80]!r}: letters, digits and . _ @ + -, at most 128")
        self.key, self.name, self.console = key, name, console

    def sign(self, change: dict[str, Any], *, by: str | None = None, domain: bytes = STATUS_SIG_DOMAIN
             ) -> dict[str, Any]:
        """`change` with `by` (the analyst; for a console key, the signed-in person it acts for, and
        `via` its own name) and its signature under `domain`."""
        if self.console:
            if not by:
                raise SigningKeyError("a console key signs for the person it serves: give who it is (by)")
            body = {**change, "by": by, "via": self.name}
        else:
            if by is not None and by != self.name:
                raise SigningKeyError(f"this key belongs to {self.name!r}: it cannot sign a change by {by!r}")
            body = {**change, "by": self.name}
        body.pop(SIGNATURE_FIELD, None)
        sig = self.key.sign(domain + canonicalize(body))
        return {**body, SIGNATURE_FIELD: {"kid": self.key.kid,
                                          "sig": base64.urlsafe_b64encode(sig).rstrip(b"=").decode("ascii")}}


@dataclass(frozen=True)
class AnalystKeys:
    """The analyst key set a chain worker or a verifier trusts: kid -> (analyst or console name,
    whether it is a console's), and the keys with their windows in `ring`."""

    names: dict[str, tuple[str, bool]]
    ring: Verifier

    def problem(self, change: Any, *, at: str, domain: bytes = STATUS_SIG_DOMAIN, noun: str = "status change"
                ) -> str | None:
        """Why `change` (a parsed status change, or another message signed under `domain`) is not
        signed by the analyst it names, or None when it is. `at` (RFC 3339 UTC) is when the key must
        be valid: the chain worker's clock when it takes the change, the record's time when a
        verifier checks it."""
        if type(change) is not dict:
            return f"not a {noun} (a JSON object)"
        member = change.get(SIGNATURE_FIELD)
        if member is None:
            return f"the {noun} carries no analyst signature"
        if type(member) is not dict or set(member) != {"kid", "sig"} or type(member["kid"]) is not str \
                or type(member["sig"]) is not str:
            return "signature is not {kid, sig} strings"
        kid, text = member["kid"], member["sig"]
        if not _KID.fullmatch(kid) or kid not in self.names or kid not in self.ring:
            return f"key {kid[:64]!r} is not in the analyst key set"
        name, console = self.names[kid]
        by, via = change.get("by"), change.get("via")
        if console and via != name:
            return f"console key {kid} ({name}) signed a {noun} that does not say it came through {name!r}"
        if not console and (by != name or via is not None):
            return f"analyst key {kid} belongs to {name!r}, not {str(by)[:80]!r}"
        if not _SIG.fullmatch(text):
            return "signature is not 64 bytes in base64url"
        try:
            sig = base64.urlsafe_b64decode(text + "==")
            message = domain + canonicalize({k: v for k, v in change.items() if k != SIGNATURE_FIELD})
        except (binascii.Error, ValueError) as exc:  # NotCanonicalizable is a ValueError
            return f"signature cannot be checked: {exc}"[:200]
        if not self.ring.verify(kid, sig, message):
            return f"the signature by {kid} ({name}) does not verify"
        if not self.ring.valid_at(kid, at):
            return f"key {kid} ({name}) is not valid at {at[:40]} (retired, or not yet valid)"
        return None


def signed_message_problem(kind: str, value: bytes, keys: AnalystKeys | None, *, at: str) -> str | None:
    """Why the message `value` of a SIGNED_KINDS kind is not signed by a registered key for whom it
    names (None when it is): the one check the chain worker admits by and the verifier holds
    chained records to."""
    spec = SIGNED_KINDS[kind]
    if keys is None:
        return f"no analyst key set: no {spec.noun} can be shown to be signed"
    if len(value) > spec.max_bytes:
        return f"over {spec.max_bytes} bytes: not a {spec.noun}"
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"[:200]
    return keys.problem(doc, at=at, domain=spec.domain, noun=spec.noun)


def parse_analyst_key_set(doc: Any, where: str) -> list[dict[str, Any]]:
    """The keys of an analyst key set document, each shape-checked. Raises SigningKeyError."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise SigningKeyError(f"{where}: an analyst key set is a JSON object with a 'keys' array")
    keys = doc["keys"]
    if len(keys) > MAX_KEYS:
        raise SigningKeyError(f"{where}: {len(keys)} keys, at most {MAX_KEYS}")
    for i, jwk in enumerate(keys):
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" \
                or type(jwk.get("x")) is not str or len(jwk["x"]) != 43:
            raise SigningKeyError(f"{where}: key {i} is not an Ed25519 public JWK (kty OKP, crv Ed25519, x)")
        owners = [m for m in ("analyst", "console") if m in jwk]
        if len(owners) != 1 or type(jwk[owners[0]]) is not str or not ANALYST_NAME.fullmatch(jwk[owners[0]]):
            raise SigningKeyError(f"{where}: key {i} needs one 'analyst' or 'console' name (letters, digits and "
                                  ". _ @ + -, at most 128)")
        for bound in ("not_before", "not_after"):
            if bound in jwk and type(jwk[bound]) is not str:
                raise SigningKeyError(f"{where}: key {i}: {bound} must be an RFC 3339 time")
    return cast(list[dict[str, Any]], keys)


def owner(jwk: dict[str, Any]) -> tuple[str, bool]:
    """(name, is a console) of a key of a parsed analyst key set."""
    return (str(jwk["console"]), True) if "console" in jwk else (str(jwk["analyst"]), False)
