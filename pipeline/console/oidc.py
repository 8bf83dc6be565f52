"""Sign-in to the console with an OIDC provider: the authorization code flow with PKCE (S256),
`state` bound to the browser by a cookie, `nonce` bound to the ID token (RFC 6749, RFC 7636,
OpenID Connect Core 1.0).

The console is a confidential client (client_secret_basic). The ID token is checked with PyJWT
against the provider's published keys (asymmetric algorithms only), for this issuer, this client,
this sign-in's nonce, and its times. The person is `oidc:<email>` when the provider says the
e-mail address is verified, else `oidc:<sub>`; their console roles are the console roles named
in one claim (`AIAUDIT_CONSOLE__OIDC_ROLES_CLAIM`, default `aiaudit_roles`): none, no sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
import time
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from aiaudit.pipeline.console.roles import console_roles
from aiaudit.pipeline.contract.access import PRINCIPAL
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.settings import Settings

log = logging.getLogger("aiaudit.console.oidc")

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "ES256", "ES384", "EdDSA"]  # never HS*, never none
STATE_COOKIE = "aiaudit_oidc"
PENDING_S = 600.0
MAX_PENDING = 10_000
MAX_ANSWER_BYTES = 1 << 20
LEEWAY_S = 60


class SignInRefused(Exception):
    """The provider's answer does not sign anyone in; the message says why (logged, not shown)."""


def _get_json(url: str, *, data: bytes | None = None, headers: Mapping[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}), method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310  # the configured provider's own URLs
        body = resp.read(MAX_ANSWER_BYTES + 1)
    if len(body) > MAX_ANSWER_BYTES:
        raise SignInRefused(f"{url}: the answer is larger than {MAX_ANSWER_BYTES} bytes")
    return json.loads(body)


def person_and_roles(claims: Mapping[str, Any], roles_claim: str) -> tuple[str, tuple[str, ...]]:
    """Who a verified ID token names and the console roles it gives (pure). Raises SignInRefused."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise SignInRefused("the ID token has no subject")
    email = claims.get("email")
    who = email if isinstance(email, str) and claims.get("email_verified") is True else sub
    person = f"oidc:{who}"
    if not PRINCIPAL.fullmatch(person):
        raise SignInRefused(f"the ID token names {who[:80]!r}, which is not a principal an access record can carry")
    held = console_roles(claims.get(roles_claim))
    if not held:
        raise SignInRefused(f"the ID token's {roles_claim!r} claim names no console role (auditor, soc, analyst, admin)")
    return person, held


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, its S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


@dataclass
class Pending:
    nonce: str
    verifier: str
    created: float


class OidcSignIn:
    def __init__(self, issuer: str, client_id: str, client_secret: str, redirect_uri: str, roles_claim: str,
                 metadata: Mapping[str, Any]) -> None:
        self.issuer, self.client_id, self.client_secret = issuer, client_id, client_secret
        self.redirect_uri, self.roles_claim = redirect_uri, roles_claim
        try:
            self.authorize_url = str(metadata["authorization_endpoint"])
            self.token_url = str(metadata["token_endpoint"])
            self.jwks = jwt.PyJWKClient(str(metadata["jwks_uri"]), cache_keys=True, lifespan=600)
        except KeyError as exc:
            raise ConfigError(f"{issuer}: the provider's metadata has no {exc.args[0]}") from exc
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, public_url: str) -> "OidcSignIn":
        c = settings.console
        if not (c.oidc_issuer and c.oidc_client_id and c.oidc_client_secret):
            raise ConfigError("OIDC sign-in needs AIAUDIT_CONSOLE__OIDC_ISSUER, _OIDC_CLIENT_ID and _OIDC_CLIENT_SECRET")
        issuer = c.oidc_issuer.rstrip("/")
        try:
            metadata = _get_json(f"{issuer}/.well-known/openid-configuration")
        except (OSError, ValueError, SignInRefused) as exc:
            raise ConfigError(f"{issuer}: cannot read the provider's OpenID configuration ({exc})") from exc
        if not isinstance(metadata, dict) or str(metadata.get("issuer", "")).rstrip("/") != issuer:
            raise ConfigError(f"{issuer}: the provider's configuration names another issuer "
                              f"({str(metadata.get('issuer') if isinstance(metadata, dict) else None)[:120]!r})")
        return cls(issuer, c.oidc_client_id, c.oidc_client_secret.get_secret_value(), f"{public_url}/oidc/callback",
                   c.oidc_roles_claim, metadata)

    def start(self) -> tuple[str, str]:
        """(state, the provider's URL to send the browser to)."""
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        now = time.monotonic()
        with self._lock:
            self._pending[state] = Pending(nonce, verifier, now)
            while self._pending and (len(self._pending) > MAX_PENDING
                                     or now - next(iter(self._pending.values())).created > PENDING_S):
                self._pending.popitem(last=False)
        query = urllib.parse.urlencode({"response_type": "code", "client_id": self.client_id,
                                        "redirect_uri": self.redirect_uri, "scope": "openid email aiaudit",
                                        "state": state, "nonce": nonce, "code_challenge": challenge,
                                        "code_challenge_method": "S256"})
        return state, f"{self.authorize_url}?{query}"

    def finish(self, state: str | None, cookie_state: str | None, code: str | None) -> tuple[str, tuple[str, ...]]:
        """The person and roles of a callback. Raises SignInRefused."""
        if not state or not cookie_state or not secrets.compare_digest(state.encode()[:128], cookie_state.encode()[:128]):
            raise SignInRefused("the callback's state is not this browser's sign-in")
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or time.monotonic() - pending.created > PENDING_S:
            raise SignInRefused("the sign-in is unknown or older than 10 minutes")
        if not code or len(code) > 2048:
            raise SignInRefused("the callback carries no code")
        basic = base64.b64encode(f"{urllib.parse.quote(self.client_id, safe='')}:"
                                 f"{urllib.parse.quote(self.client_secret, safe='')}".encode()).decode()
        try:
            answer = _get_json(self.token_url, data=urllib.parse.urlencode({
                "grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "code_verifier": pending.verifier}).encode(), headers={
                "authorization": f"Basic {basic}", "content-type": "application/x-www-form-urlencoded",
                "accept": "application/json"})
        except (OSError, ValueError) as exc:
            raise SignInRefused(f"the provider did not exchange the code: {exc}") from exc
        token = answer.get("id_token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise SignInRefused("the provider's answer has no ID token")
        return person_and_roles(self.verified_claims(token, pending.nonce), self.roles_claim)

    def verified_claims(self, token: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token signed by the provider's published keys (asymmetric algorithms
        only), for this issuer and client, in its times, with this sign-in's nonce. Raises SignInRefused."""
        if len(token) > 16_384:
            raise SignInRefused("the ID token is larger than 16 KiB")
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=ALGORITHMS, audience=self.client_id,
                                                issuer=self.issuer, leeway=LEEWAY_S,
                                                options={"require": ["exp", "iat", "sub", "nonce"]})
        except (jwt.PyJWTError, TypeError, ValueError) as exc:  # a header naming another family's algorithm
            raise SignInRefused(f"the ID token does not verify: {exc}") from exc  # than the key's is a TypeError
        if not secrets.compare_digest(str(claims.get("nonce")).encode(), nonce.encode()):
            raise SignInRefused("the ID token's nonce is not this sign-in's")
        return claims

    def routes(self, console: Any, guarded: Callable[[Callable[[Request], Awaitable[Response]]],
                                                      Callable[[Request], Awaitable[Response]]]) -> list[Route]:
        async def login(_request: Request) -> Response:
            state, url = self.start()
            resp = RedirectResponse(url, status_code=303)
            # Lax, not Strict: the provider's redirect back is a top-level navigation from its site.
            resp.set_cookie(STATE_COOKIE, state, httponly=True, samesite="lax", secure=console.secure,
                            path="/oidc/callback", max_age=int(PENDING_S))
            return resp

        async def callback(request: Request) -> Response:
            q = request.query_params
            try:
                if q.get("error"):
                    raise SignInRefused(f"the provider said {q.get('error', '')[:80]!r}")
                if q.get("iss") is not None and q.get("iss", "").rstrip("/") != self.issuer:
                    raise SignInRefused("the callback names another issuer (RFC 9207)")
                person, held = await run_in_threadpool(self.finish, q.get("state"), request.cookies.get(STATE_COOKIE),
                                                       q.get("code"))
            except SignInRefused as exc:
                log.warning("console: an OIDC sign-in was refused: %s", exc)
                resp = RedirectResponse("/login?error=oidc", status_code=303)
            else:
                resp = console.signed_in(person, held, self.issuer)
            resp.delete_cookie(STATE_COOKIE, path="/oidc/callback")
            return resp

        return [Route("/oidc/login", guarded(login), methods=["GET"]),
                Route("/oidc/callback", guarded(callback), methods=["GET"])]
