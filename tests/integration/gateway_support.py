"""A gateway under test: its files, keys, a fake upstream, and the events it emitted."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import openai
from cryptography.hazmat.primitives.asymmetric import rsa

from aiaudit.pipeline import contract
from aiaudit.pipeline.gateway.app import build_app
from aiaudit.pipeline.gateway.identity import new_api_key
from aiaudit.pipeline.ops.vendor_standin import FakeUpstream, Served
from aiaudit.pipeline.settings import GatewaySettings, Settings
from tests.integration.support import read_topic

POLICY = """
policy_id: itest
version: "1"
org_terms: [{name: falcon, pattern: "project falcon", level: restricted}]
vendors:
  openai: {max_level: internal}
  local: {max_level: restricted}
retention_days: {standard: 30}
routes:
  default:
    roles: [engineer, agent-role]
    vendors: {openai: ["gpt-*", "fail-500", "hang", "stall", "redirect"]}
    redact: ["pii.email"]
    deny: ["secret.*"]
    reroute: {vendor: local, model: local-model}
    retention_scope: standard
    content: commitments
    fail: closed
  open:
    roles: [engineer]
    vendors: {openai: ["gpt-*"]}
    redact: ["pii.email"]
    deny: ["secret.*"]
    retention_scope: standard
    content: full
    fail: open
"""
ISSUER, AUDIENCE = "https://idp.itest.example/", "aiaudit-gateway"


@dataclass
class GatewayUnderTest:
    settings: Settings
    url: str
    keys: dict[str, str]  # principal id -> API key
    upstream: FakeUpstream
    policy_file: Path
    signing_key: rsa.RSAPrivateKey
    app: Any

    def client(self, principal: str = "alice@itest", *, route: str | None = None, token: str | None = None,
               timeout: float = 20) -> openai.OpenAI:
        base = f"{self.url}/r/{route}/v1" if route else f"{self.url}/v1"
        return openai.OpenAI(api_key=token or self.keys[principal], base_url=base, max_retries=0, timeout=timeout)

    def token(self, *, sub: str = "dana@itest", role: str = "engineer", expires_in: int = 300, audience: str = AUDIENCE,
              issuer: str = ISSUER, kid: str = "itest-1", **extra: Any) -> str:
        now = int(time.time())
        claims = {"sub": sub, "role": role, "iss": issuer, "aud": audience, "iat": now, "exp": now + expires_in, **extra}
        return jwt.encode(claims, self.signing_key, algorithm="RS256", headers={"kid": kid})

    def events(self) -> list[dict[str, Any]]:
        """Every event the gateway emitted so far, after waiting for the broker to acknowledge them
        (and the content they keep, sealed and sent by the gateway's content keeper)."""
        assert self.app.state.gateway.evidence.emitter.drain(30) == 0
        assert self.app.state.gateway.keeper.drain(30) == 0
        max_bytes = self.settings.chain.max_event_bytes
        return [contract.decode(m.value(), max_bytes=max_bytes) for m in read_topic(self.settings, self.settings.kafka.requests_topic)]

    def event(self, label: str) -> dict[str, Any]:
        """The one event whose request carried `user=label` (each test labels its requests)."""
        found = [e for e in self.events() if e["actor"]["untrusted_label"] == label]
        assert len(found) == 1, f"{len(found)} events labelled {label!r}"
        return found[0]


def write_files(tmp_path: Path, upstream_url: str, signing_key: rsa.RSAPrivateKey) -> tuple[Path, Path, dict[str, str]]:
    keys, entries = {}, []
    for pid, role, kind, behalf in (("alice@itest", "engineer", "workforce", None),
                                    ("sam@itest", "support", "workforce", None),
                                    ("agent:itest-bot", "agent-role", "agent", "alice@itest")):
        key, digest = new_api_key()
        keys[pid] = key
        entries.append({"sha256": digest, "id": pid, "role": role, "type": kind, "on_behalf_of": behalf})
    config = {
        "upstreams": {
            "openai": {"base_url": f"{upstream_url}/v1", "provider_name": "openai", "timeout_s": 1.0},
            "local": {"base_url": f"{upstream_url}/v1", "provider_name": "vllm", "timeout_s": 1.0},
        },
        "api_keys": entries,
        "oidc": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": f"{upstream_url}/jwks.json", "leeway_s": 5,
                 "delegations": {"agent:planner": ["dana@itest"]}},
    }
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(json.dumps(config))  # JSON is YAML
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    return config_file, policy_file, keys


def jwks_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}


class RunningGateway:
    """Fake upstream + gateway served in threads, for a `with` block."""

    def __init__(self, settings: Settings, tmp_path: Path, **gateway: Any) -> None:
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.upstream = FakeUpstream(jwks_of(self.signing_key, "itest-1"))
        self.upstream_server = Served(self.upstream.app)
        self.tmp_path = tmp_path
        self.settings = settings
        self.gateway = gateway
        self.gateway_server: Served | None = None

    def __enter__(self) -> GatewayUnderTest:
        self.upstream_server.__enter__()
        config_file, policy_file, keys = write_files(self.tmp_path, self.upstream_server.url, self.signing_key)
        gw_settings = GatewaySettings(config_file=config_file, policy_file=policy_file, policy_reload_s=0.2,
                                      gateway_id=f"itest-{uuid.uuid4().hex[:6]}", **self.gateway)
        settings = self.settings.model_copy(update={"gateway": gw_settings})
        app = build_app(settings)
        self.gateway_server = Served(app).__enter__()
        return GatewayUnderTest(settings, self.gateway_server.url, keys, self.upstream, policy_file, self.signing_key, app)

    def __exit__(self, *exc: object) -> None:
        if self.gateway_server is not None:
            self.gateway_server.__exit__(*exc)
        self.upstream_server.__exit__(*exc)
