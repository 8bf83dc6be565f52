"""Identity from authentication only: API keys (stored hashed) and OIDC bearer tokens (JWKS).

The principal a request acts as comes from what it proved, never from what it says: a `user`
field or header is kept as `untrusted_label` and nothing else. An agent has its own identity
and may act for a person: an API key entry says so (`on_behalf_of`), and an OIDC token says so
with the RFC 8693 `act` claim (the token's `sub` is the person, `act.sub` the agent).

API keys are random (`aiak_` + 32 random bytes, base64url), so SHA-256 is the right hash for
them (no dictionary to guard against); only the hex digests are stored.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import AuthError

API_KEY_PREFIX = "aiak_"
ActorType = Literal["workforce", "agent", "service"]


@dataclass(frozen=True)
class Principal:
    """Who a request acts as, and the authorisation in effect, snapshotted at decision time."""

    id: str
    type: ActorType
    role: str
    scopes: tuple[str, ...]
    authn_method: str  # api_key | oidc
    on_behalf_of: str | None = None


class ApiKeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    id: str = Field(min_length=1, max_length=256)
    type: ActorType = "workforce"
    role: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(default_factory=list)
    on_behalf_of: str | None = None


def new_api_key() -> tuple[str, str]:
    """A fresh key and the SHA-256 hex to store. Show the key once; keep only the hash."""
    key = API_KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return key, hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Hashed API keys -> principals."""

    def __init__(self, entries: list[ApiKeyEntry]) -> None:
        self._by_hash = {e.sha256: e for e in entries}
        if len(self._by_hash) != len(entries):
            raise ValueError("the same API key hash is listed twice")

    def authenticate(self, key: str) -> Principal:
        if len(key) > 256:
            raise AuthError("invalid API key")
        entry = self._by_hash.get(hash_api_key(key))
        if entry is None:
            raise AuthError("invalid API key")
        return Principal(entry.id, entry.type, entry.role, tuple(entry.scopes), "api_key", entry.on_behalf_of)


class OidcSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuer: str
    audience: str
    jwks_url: str
    # Asymmetric only: a symmetric (HS*) or `none` token would let anyone holding the
    # verification material mint identities.
    algorithms: list[Literal["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]] = ["RS256", "ES256", "EdDSA"]
    leeway_s: int = Field(30, ge=0, le=300)  # clock skew allowed on exp/nbf/iat
    role_claim: str = "role"
    default_role: str | None = None  # role when the token has none; unset: such tokens are refused
    type_claim: str = "actor_type"
    jwks_refresh_s: int = Field(600, ge=10)


def principal_from_claims(claims: Mapping[str, Any], oidc: OidcSettings) -> Principal:
    """The principal a validated token names (pure)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthError("token has no subject")
    role = claims.get(oidc.role_claim, oidc.default_role)
    if isinstance(role, list):
        role = role[0] if role else oidc.default_role
    if not isinstance(role, str) or not role:
        raise AuthError(f"token has no {oidc.role_claim!r} claim")
    scope = claims.get("scope", claims.get("scp", []))
    scopes = tuple(scope.split() if isinstance(scope, str) else (str(s) for s in scope))
    act = claims.get("act")
    if isinstance(act, Mapping) and isinstance(act.get("sub"), str):
        return Principal(act["sub"], "agent", role, scopes, "oidc", on_behalf_of=sub)
    kind = claims.get(oidc.type_claim, "workforce")
    if kind not in ("workforce", "agent", "service"):
        raise AuthError(f"token claim {oidc.type_claim!r} must be workforce, agent or service")
    return Principal(sub, kind, role, scopes, "oidc")


class Jwks:
    """The issuer's signing keys, fetched with `fetch` and refreshed on an unknown kid (at most every
    30 s, so forged kids cannot make us hammer the issuer) and every `jwks_refresh_s`."""

    def __init__(self, oidc: OidcSettings, fetch: Callable[[str], Awaitable[dict[str, Any]]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.oidc = oidc
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")

    async def refresh(self) -> None:
        doc = await self._fetch(self.oidc.jwks_url)
        keys = {}
        for jwk in doc.get("keys", []):
            if "kid" in jwk and jwk.get("use", "sig") == "sig":
                try:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk)
                except jwt.PyJWKError:
                    continue  # a key type we do not support cannot verify anything we accept
        self._keys = keys
        self._fetched_at = self._clock()

    async def key(self, kid: str) -> jwt.PyJWK:
        age = self._clock() - self._fetched_at
        if age > self.oidc.jwks_refresh_s or (kid not in self._keys and age > 30):
            await self.refresh()
        if kid not in self._keys:
            raise AuthError("token signed with an unknown key")
        return self._keys[kid]

    async def authenticate(self, token: str) -> Principal:
        if len(token) > 16384:
            raise AuthError("token too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed token") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.oidc.algorithms:
            raise AuthError(f"token algorithm {alg!r} is not accepted")
        if not isinstance(kid, str):
            raise AuthError("token has no key id")
        key = await self.key(kid)
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=self.oidc.audience, issuer=self.oidc.issuer,
                                leeway=self.oidc.leeway_s, options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("token audience is not this gateway") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("token issuer is not trusted") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        return principal_from_claims(claims, self.oidc)
