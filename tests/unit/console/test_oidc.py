"""The console's OIDC sign-in, its checks on hostile input: who and which roles a token gives, the
callback's state, and ID tokens that must not sign anyone in (another key, HS256 with the public
key, another audience or issuer, a replayed nonce, expired). Keys are real (Ed25519, RSA); the
provider's keys are served on loopback, as PyJWT reads them from the provider's jwks_uri."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from aiaudit.pipeline.console.oidc import OidcSignIn, SignInRefused, person_and_roles, pkce_pair

ISSUER = "https://id.acme.example"


def test_who_and_which_roles_a_verified_token_gives():
    assert person_and_roles({"sub": "u1", "email": "carol@acme.example", "email_verified": True,
                             "aiaudit_roles": ["auditor", "Domain Users"]}, "aiaudit_roles") == (
        "oidc:carol@acme.example", ("auditor",))
    # an address the provider did not verify is not who signs in: the subject is
    assert person_and_roles({"sub": "u1", "email": "ceo@acme.example", "aiaudit_roles": "soc"}, "aiaudit_roles")[0] == "oidc:u1"
    for claims, why in (({"aiaudit_roles": ["admin"]}, "no subject"),
                        ({"sub": "u1", "aiaudit_roles": ["Domain Admins"]}, "no console role"),
                        ({"sub": "u1", "aiaudit_roles": {"admin": True}}, "no console role"),
                        ({"sub": "a b\n<script>", "aiaudit_roles": ["admin"]}, "not a principal")):
        with pytest.raises(SignInRefused, match=why):
            person_and_roles(claims, "aiaudit_roles")


def test_pkce_challenge_is_the_s256_of_the_verifier():
    import base64
    import hashlib

    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert challenge == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


@pytest.fixture
def signin():
    key = ed25519.Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "EdDSA"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Jwks)  # the provider's jwks_uri, on loopback
    threading.Thread(target=server.serve_forever, daemon=True).start()
    s = OidcSignIn(ISSUER, "aiaudit-console", "secret", "https://console.acme.example/oidc/callback", "aiaudit_roles",
                   {"authorization_endpoint": f"{ISSUER}/auth", "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"http://127.0.0.1:{server.server_address[1]}/jwks"})
    yield s, key
    server.shutdown()


def _token(key, alg="EdDSA", **over):
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "aiaudit-console", "sub": "u1", "iat": now, "exp": now + 300, "nonce": "n1",
              "email": "carol@acme.example", "email_verified": True, "aiaudit_roles": ["auditor"], **over}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": "k1"})


def test_only_a_token_of_the_providers_key_for_this_client_and_sign_in_verifies(signin):
    s, key = signin
    assert s.verified_claims(_token(key), "n1")["sub"] == "u1"
    other = ed25519.Ed25519PrivateKey.generate()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raw_public = key.public_key().public_bytes_raw()
    hostile = {
        "another key": _token(other),
        "another algorithm family": _token(rsa_key, alg="RS256"),
        "another audience": _token(key, aud="someone-else"),
        "another issuer": _token(key, iss="https://evil.example"),
        "a replayed nonce": _token(key, nonce="n0"),
        "expired": _token(key, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        "unsigned": jwt.encode({"iss": ISSUER, "aud": "aiaudit-console", "sub": "u1", "nonce": "n1"}, None,
                               algorithm="none", headers={"kid": "k1"}),
        "huge": "a" * 20_000,
    }
    try:  # HS256 keyed with the public key (algorithm confusion), where PyJWT lets one be made at all
        hostile["HS256 with the public key"] = jwt.encode({"iss": ISSUER, "aud": "aiaudit-console", "sub": "u1",
                                                           "nonce": "n1"}, raw_public, algorithm="HS256",
                                                          headers={"kid": "k1"})
    except jwt.PyJWTError:
        pass
    for name, token in hostile.items():
        with pytest.raises(SignInRefused):
            s.verified_claims(token, "n1")
            pytest.fail(f"{name} verified")


def test_a_callback_must_be_this_browsers_pending_sign_in(signin):
    s, _ = signin
    state, url = s.start()
    assert "code_challenge_method=S256" in url and f"state={state}" in url and "nonce=" in url
    for given, cookie in ((state, None), (None, state), (state, "x" * 43), ("x" * 43, "x" * 43)):
        with pytest.raises(SignInRefused, match="state|unknown"):
            s.finish(given, cookie, "code")
    with pytest.raises(SignInRefused, match="no code"):
        s.finish(state, state, None)
    with pytest.raises(SignInRefused, match="unknown"):  # a state is used once
        s.finish(state, state, "code")
