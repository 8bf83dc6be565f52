"""Identity from authentication only: API keys (stored hashed) and OIDC bearer tokens (JWKS).

The principal a request acts as comes from what it proved, never from what it says: a `user`
field or header is kept as `untrusted_label` and nothing else. An agent has its own identity
and may act for a person: an API key entry says so (`on_behalf_of`), and an OIDC token says so
with the RFC 8693 `act` claim (the token's `sub` is the person, `act.sub` the agent).

API keys are random (`aiak_` + 32 random bytes, base64url), so SHA-256 is the right hash for
them (no dictionary to guard against); only the hex digests are stored.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from pydantic import BaseModel, ConfigDict, Field

from aiaudit.pipeline.errors import AuthError

log = logging.getLogger("aiaudit.gateway.identity")

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
    leeway_s: int = Field(default=30, ge=0, le=300)  # clock skew allowed on exp/nbf/iat
    role_claim: str = "role"
    default_role: str | None = None  # role when the token has none; unset: such tokens are refused
    type_claim: str = "actor_type"
    jwks_refresh_s: int = Field(default=600, ge=10)
    # Which agents may act for whom (RFC 8693 `act`): agent subject -> the people (fnmatch
    # patterns) it may act for. A token with an `act` claim outside this list is refused.
    delegations: dict[str, list[str]] = Field(default_factory=dict)


def principal_from_claims(claims: Mapping[str, Any], oidc: OidcSettings) -> Principal:
    """The principal a validated token names (pure)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthError("token has no subject")
    role = claims.get(oidc.role_claim, oidc.default_role)
    if isinstance(role, list):  # one role is what a policy decides on: a list must hold exactly one
        if len(role) != 1:
            raise AuthError(f"token claim {oidc.role_claim!r} must name one role, not {len(role)}")
        role = role[0]
    if not isinstance(role, str) or not role or len(role) > 128:
        raise AuthError(f"token has no {oidc.role_claim!r} claim (one role, a string)")
    scope = claims.get("scope", claims.get("scp", []))
    if isinstance(scope, str):
        scopes = tuple(scope.split())
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        scopes = tuple(scope)
    else:
        raise AuthError("token claim 'scope' must be a string or a list of strings")
    if len(scopes) > 64 or any(len(s) > 256 for s in scopes):
        raise AuthError("token claim 'scope' is too large")
    act = claims.get("act")
    if act is not None:
        if not isinstance(act, Mapping) or not isinstance(act.get("sub"), str) or not act["sub"]:
            raise AuthError("token claim 'act' must be an object with a subject")
        allowed = oidc.delegations.get(act["sub"], [])
        if not any(fnmatch.fnmatchcase(sub, pattern) for pattern in allowed):
            raise AuthError(f"agent {act['sub'][:128]!r} may not act for {sub[:128]!r} (gateway `oidc.delegations`)")
        return Principal(act["sub"], "agent", role, scopes, "oidc", on_behalf_of=sub)
    kind = claims.get(oidc.type_claim, "workforce")
    if kind not in ("workforce", "agent", "service"):
        raise AuthError(f"token claim {oidc.type_claim!r} must be workforce, agent or service")
    return Principal(sub, kind, role, scopes, "oidc")


# Which token algorithms each key type can verify: a header `alg` of another family is refused.
ALG_FAMILY = {"RSA": ("RS", "PS"), "EC": ("ES",), "OKP": ("EdDSA",)}
MAX_BACKOFF_S = 300.0


class Jwks:
    """The issuer's signing keys, fetched with `fetch` every `jwks_refresh_s` and on an unknown kid
    (at most every 30 s, so forged kids cannot make us hammer the issuer). One fetch at a time,
    however many requests wait for it; when the issuer cannot be reached, the cached keys go on
    serving, the next try backs off (5 s doubling to 5 min), and a token whose key is not cached
    gets 503 (try again), never a 500."""

    def __init__(self, oidc: OidcSettings, fetch: Callable[[str], Awaitable[dict[str, Any]]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.oidc = oidc
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")  # last successful fetch
        self._tried_at = float("-inf")  # last attempt, successful or not
        self._backoff_s = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0
        self.last_error: str | None = None

    async def refresh(self) -> None:
        """Fetch the keys now. Raises whatever `fetch` raises (the caller decides what it means)."""
        self._tried_at = self._clock()
        self.fetches += 1
        doc = await self._fetch(self.oidc.jwks_url)
        keys = {}
        for jwk in doc.get("keys", []) if isinstance(doc, dict) else []:
            if isinstance(jwk, dict) and "kid" in jwk and jwk.get("use", "sig") == "sig":
                try:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk)
                except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError):
                    continue  # a key type we do not support cannot verify anything we accept
        self._keys = keys
        self._fetched_at = self._clock()
        self._backoff_s = 0.0
        self.last_error = None

    def _due(self, kid: str) -> bool:
        now = self._clock()
        if now - self._tried_at < self._backoff_s:
            return False  # the issuer failed lately: wait before asking again
        age = now - self._fetched_at
        return age > self.oidc.jwks_refresh_s or (kid not in self._keys and now - self._tried_at > 30)

    async def key(self, kid: str) -> jwt.PyJWK:
        if self._due(kid):
            async with self._lock:
                if self._due(kid):  # another request may have fetched while this one waited
                    try:
                        await self.refresh()
                    except Exception as exc:  # noqa: BLE001  # any failure of the issuer: keep serving cached keys
                        self._backoff_s = min(max(2 * self._backoff_s, 5.0), MAX_BACKOFF_S)
                        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                        log.warning("JWKS %s not fetched (%s); cached keys serve, next try in %.0fs",
                                    self.oidc.jwks_url, self.last_error, self._backoff_s)
        if kid not in self._keys:
            if self.last_error is not None:
                raise AuthError("the identity provider's keys cannot be fetched; try again later", 503)
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
        if not alg.startswith(ALG_FAMILY.get(key.key_type or "", ())):
            raise AuthError(f"token algorithm {alg} does not fit its key (a {key.key_type} key)")
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=self.oidc.audience, issuer=self.oidc.issuer,
                                leeway=self.oidc.leeway_s, options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("token audience is not this gateway") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("token issuer is not trusted") from exc
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise AuthError(f"invalid token: {str(exc)[:200]}") from exc
        return principal_from_claims(claims, self.oidc)
