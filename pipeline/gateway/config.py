"""The gateway's deployment file (YAML): upstream vendors, hashed API keys, the OIDC issuer.

    upstreams:
      openai:
        base_url: https://api.openai.com/v1
        kind: openai                  # openai (any OpenAI-compatible server) | azure
        provider_name: openai         # ignored: events record the vendor's name as the policy uses it
        api_key_env: OPENAI_API_KEY   # or api_key_file: /run/secrets/openai
        timeout_s: 60                 # per read; a hung upstream fails after this
    api_keys:
      - {sha256: <hex>, id: alice@example.com, role: engineer}
      - {sha256: <hex>, id: agent:invoices, type: agent, on_behalf_of: bob@example.com, role: finance-agent}
    oidc: {issuer: ..., audience: ..., jwks_url: ...}

Secrets never live in this file: upstream keys come from the environment or a file, callers'
API keys only as SHA-256 digests (`aiaudit gateway keygen`). The policy (what may go where) is
a separate file, reloaded while running.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.gateway.identity import ApiKeyEntry, OidcSettings


class Upstream(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(pattern=r"^https?://")
    kind: Literal["openai", "azure"] = "openai"
    # Ignored (kept so that older files load): records name the vendor as the policy does, so that
    # `query --vendor`, the scorer's vendor rules and reports agree. Say the product in the name.
    provider_name: str | None = None
    api_key_env: str | None = None
    api_key_file: Path | None = None
    api_version: str = "2024-10-21"  # azure only
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    max_connections: int = Field(default=200, ge=1)

    def api_key(self) -> str | None:
        if self.api_key_file is not None:
            try:
                return self.api_key_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"upstream key file {self.api_key_file}: {exc.strerror}") from exc
        if self.api_key_env is not None:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise ConfigError(f"upstream key: environment variable {self.api_key_env} is not set")
            return value
        return None


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upstreams: dict[str, Upstream] = Field(min_length=1)
    api_keys: list[ApiKeyEntry] = Field(default_factory=list)
    oidc: OidcSettings | None = None


def load_config(path: Path) -> GatewayConfig:
    """Read and validate the deployment file. Raises ConfigError naming the field at fault."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"gateway config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"gateway config {path}: not valid YAML: {exc}") from exc
    try:
        return GatewayConfig.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"gateway config {path}: {where}: {first['msg']}") from exc
