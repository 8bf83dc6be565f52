"""Identity: hashed API keys, token claims -> principal, and OIDC token validation against a JWKS."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from aiaudit.pipeline.errors import AuthError
from aiaudit.pipeline.gateway.identity import (
    ApiKeyEntry,
    ApiKeys,
    Jwks,
    OidcSettings,
    hash_api_key,
    new_api_key,
    principal_from_claims,
)

OIDC = OidcSettings(issuer="https://idp/", audience="gw", jwks_url="https://idp/jwks", leeway_s=10,
                    delegations={"agent:planner": ["dana", "team-*"]})
KEY = ec.generate_private_key(ec.SECP256R1())
JWK = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key())), "kid": "k1", "use": "sig"}


def token(key=KEY, kid="k1", alg="ES256", **claims):
    now = int(time.time())
    body = {"sub": "dana", "role": "engineer", "iss": OIDC.issuer, "aud": OIDC.audience, "iat": now, "exp": now + 60}
    return jwt.encode({**body, **claims}, key, algorithm=alg, headers={"kid": kid})


class Fetches:
    def __init__(self, doc):
        self.doc, self.count = doc, 0

    async def __call__(self, url):
        self.count += 1
        return self.doc


def authenticate(tok, fetch=None, clock=time.monotonic):
    return asyncio.run(Jwks(OIDC, fetch or Fetches({"keys": [JWK]}), clock).authenticate(tok))


def test_api_keys_are_stored_hashed_and_map_to_principals():
    key, digest = new_api_key()
    assert key.startswith("aiak_") and digest == hash_api_key(key) and key not in digest
    keys = ApiKeys([ApiKeyEntry(sha256=digest, id="bot", type="agent", role="r", on_behalf_of="bob", scopes=["chat"])])
    p = keys.authenticate(key)
    assert (p.id, p.type, p.on_behalf_of, p.authn_method, p.scopes) == ("bot", "agent", "bob", "api_key", ("chat",))
    with pytest.raises(AuthError):
        keys.authenticate(key + "x")


def test_claims_map_to_a_person_or_an_agent_acting_for_one():
    p = principal_from_claims({"sub": "dana", "role": "engineer", "scope": "a b"}, OIDC)
    assert (p.id, p.type, p.on_behalf_of, p.scopes) == ("dana", "workforce", None, ("a", "b"))
    p = principal_from_claims({"sub": "dana", "role": ["engineer"], "act": {"sub": "agent:planner"}}, OIDC)
    assert (p.id, p.type, p.on_behalf_of, p.role) == ("agent:planner", "agent", "dana", "engineer")
    with pytest.raises(AuthError, match="'role'"):
        principal_from_claims({"sub": "dana"}, OIDC)
    with pytest.raises(AuthError, match="workforce, agent or service"):
        principal_from_claims({"sub": "dana", "role": "r", "actor_type": "admin"}, OIDC)


def test_valid_token():
    p = authenticate(token())
    assert p.id == "dana" and p.authn_method == "oidc"


@pytest.mark.parametrize(("claims", "message"), [
    ({"exp": -60}, "expired"),  # exp and nbf: seconds from now, resolved when the test runs
    ({"aud": "other"}, "audience"),
    ({"iss": "https://evil/"}, "issuer"),
    ({"nbf": 600}, "invalid token"),
])
def test_bad_claims_are_refused(claims, message):
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf") else v for k, v in claims.items()}
    with pytest.raises(AuthError, match=message):
        authenticate(token(**claims))


def test_expiry_within_the_leeway_is_accepted():
    assert authenticate(token(exp=int(time.time()) - 5)).id == "dana"


def test_wrong_key_unknown_kid_symmetric_and_none_algorithms_are_refused():
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(AuthError, match="invalid token"):
        authenticate(token(key=other))
    with pytest.raises(AuthError, match="unknown key"):
        authenticate(token(kid="k2"))
    with pytest.raises(AuthError, match="not accepted"):
        authenticate(jwt.encode({"sub": "x"}, "secret-shared-key-of-32-bytes!!!", algorithm="HS256", headers={"kid": "k1"}))
    with pytest.raises(AuthError, match="not accepted"):
        authenticate(jwt.encode({"sub": "x"}, None, algorithm="none", headers={"kid": "k1"}))
    with pytest.raises(AuthError, match="malformed"):
        authenticate("not.a.token")


def test_unknown_kid_refetches_at_most_every_30_seconds():
    fetch, now = Fetches({"keys": [JWK]}), [1000.0]
    jwks = Jwks(OIDC, fetch, clock=lambda: now[0])

    async def run():
        await jwks.authenticate(token())
        for _ in range(5):
            with pytest.raises(AuthError):
                await jwks.authenticate(token(kid="forged"))
        now[0] += 31
        with pytest.raises(AuthError):
            await jwks.authenticate(token(kid="forged"))

    asyncio.run(run())
    assert fetch.count == 2


@pytest.mark.parametrize(("claims", "message"), [
    ({"role": ["engineer", "admin"]}, "must name one role, not 2"),  # which one would the policy judge?
    ({"role": []}, "must name one role, not 0"),
    ({"role": 5}, "one role, a string"),
    ({"scope": 5}, "'scope' must be a string or a list of strings"),
    ({"scope": ["a", {"b": 1}]}, "'scope' must be a string or a list of strings"),
    ({"scope": ["s"] * 65}, "too large"),
    ({"act": {"sub": "agent:planner"}, "sub": "erin"}, "may not act for 'erin'"),  # not in the delegations
    ({"act": {"sub": "agent:rogue"}}, "'agent:rogue' may not act for 'dana'"),
    ({"act": "agent:planner"}, "'act' must be an object"),
])
def test_claim_shapes_have_defined_behaviour(claims, message):
    with pytest.raises(AuthError, match=message):
        principal_from_claims({"sub": "dana", "role": "engineer", **claims}, OIDC)


def test_a_delegation_pattern_admits_the_people_it_names():
    p = principal_from_claims({"sub": "team-7", "role": "r", "act": {"sub": "agent:planner"}}, OIDC)
    assert (p.id, p.on_behalf_of) == ("agent:planner", "team-7")


def test_an_algorithm_that_does_not_fit_the_key_type_is_a_401_not_a_type_error():
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r1", "use": "sig"}
    forged = jwt.encode({"sub": "x"}, KEY, algorithm="ES256", headers={"kid": "r1"})  # ES256 naming an RSA key
    with pytest.raises(AuthError, match="does not fit its key") as info:
        authenticate(forged, fetch=Fetches({"keys": [JWK, rsa_jwk]}))
    assert info.value.status == 401


class Failing:
    def __init__(self):
        self.count, self.up = 0, False

    async def __call__(self, url):
        self.count += 1
        await asyncio.sleep(0.01)
        if not self.up:
            raise OSError("connection refused")
        return {"keys": [JWK]}


def test_an_identity_provider_that_is_down_never_makes_a_500_and_is_asked_once_at_a_time():
    fetch, now = Failing(), [1000.0]
    jwks = Jwks(OIDC, fetch, clock=lambda: now[0])
    fetch.up = True

    async def run():
        await jwks.authenticate(token())  # keys cached
        assert fetch.count == 1
        fetch.up = False
        now[0] += OIDC.jwks_refresh_s + 1  # time to refresh, and the issuer is down
        # Valid tokens under the cached key keep working, and 50 at once cause one fetch, not 50.
        results = await asyncio.gather(*(jwks.authenticate(token()) for _ in range(50)))
        assert all(p.id == "dana" for p in results) and fetch.count == 2
        # Unknown kids while it is down: 503 (try again), and no fetch per request (backing off).
        errors = await asyncio.gather(*(jwks.authenticate(token(kid=f"new-{i}")) for i in range(50)),
                                      return_exceptions=True)
        assert all(isinstance(e, AuthError) and e.status == 503 for e in errors) and fetch.count == 2
        now[0] += 6  # after the back-off, one more try; still down
        await jwks.authenticate(token())
        assert fetch.count == 3
        fetch.up = True
        now[0] += 11  # the back-off doubled to 10 s
        await jwks.authenticate(token())
        assert fetch.count == 4 and jwks.last_error is None

    asyncio.run(run())
