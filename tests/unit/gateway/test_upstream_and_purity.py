"""Upstream addressing per vendor kind, deployment-file errors, and the pure modules' imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.gateway.config import Upstream, load_config
from aiaudit.pipeline.gateway.upstream import Vendor


def test_openai_kind_uses_a_bearer_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("ITEST_VENDOR_KEY", "sk-vendor")
    v = Vendor.open("openai", Upstream(base_url="https://api.example/v1/", api_key_env="ITEST_VENDOR_KEY"))
    url, params, headers = v._target("chat/completions", "gpt-4o")
    assert url == "https://api.example/v1/chat/completions" and params == {}
    assert headers["authorization"] == "Bearer sk-vendor" and "api-key" not in headers


def test_azure_kind_addresses_the_deployment_with_an_api_key_header(tmp_path):
    key = tmp_path / "azure.key"
    key.write_text("az-secret\n")
    v = Vendor.open("azure", Upstream(base_url="https://acme.openai.azure.com", kind="azure", api_key_file=key,
                                      api_version="2024-10-21"))
    url, params, headers = v._target("embeddings", "text-embedding-3-small")
    assert url == "https://acme.openai.azure.com/openai/deployments/text-embedding-3-small/embeddings"
    assert params == {"api-version": "2024-10-21"} and headers["api-key"] == "az-secret"
    assert "authorization" not in headers


@pytest.mark.parametrize("model", ["gpt-4o-x/../../o1-secret-deployment", "gpt-4o?api-version=1", "gpt-4o#x",
                                   "gpt 4o", "", "a" * 65, "../x", "gpt%2F..", "-leading-dash"])
def test_azure_deployment_names_cannot_leave_their_path_segment(tmp_path, model):
    """Model names reach the Azure URL path: `../`, `?`, `#` would reach another deployment with the gateway's key."""
    from aiaudit.pipeline.errors import UpstreamError

    key = tmp_path / "azure.key"
    key.write_text("az-secret\n")
    v = Vendor.open("azure", Upstream(base_url="https://acme.openai.azure.com", kind="azure", api_key_file=key))
    with pytest.raises(UpstreamError, match="not a deployment name") as info:
        v._target("chat/completions", model)
    assert info.value.status == 400


def test_missing_vendor_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ITEST_UNSET_KEY", raising=False)
    with pytest.raises(ConfigError, match="ITEST_UNSET_KEY is not set"):
        Vendor.open("openai", Upstream(base_url="https://x/v1", api_key_env="ITEST_UNSET_KEY"))


@pytest.mark.parametrize(("text", "message"), [
    ("upstreams: {}", "upstreams"),
    ("upstreams: {a: {base_url: ftp://x}}", "upstreams.a.base_url"),
    ("upstreams: {a: {base_url: 'http://x'}}\napi_keys: [{sha256: short, id: a, role: r}]", "api_keys.0.sha256"),
    ("upstreams: {a: {base_url: 'http://x'}}\nsecret_key: oops", "secret_key"),
    ("upstreams: [", "not valid YAML"),
])
def test_bad_deployment_files_name_the_field(tmp_path, text, message):
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_pure_gateway_modules_import_no_kafka_http_or_clickhouse():
    code = ("import sys, aiaudit.pipeline.gateway.classify, aiaudit.pipeline.gateway.policy, aiaudit.pipeline.gateway.event, "
            "aiaudit.pipeline.gateway.identity; bad = [m for m in sys.modules if m.split('.')[0] in ('confluent_kafka', "
            "'faust', 'aiokafka', 'aiohttp', 'httpx', 'starlette', 'clickhouse_connect', 'chdb')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
