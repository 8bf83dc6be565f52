"""Upstream vendors (edge): one pooled httpx client per vendor, OpenAI wire format both ways.

`openai` kind: `<base_url>/chat/completions` with a bearer key (OpenAI, Anthropic's and
other OpenAI-compatible endpoints, vLLM, Ollama ...). `azure` kind:
`<base_url>/openai/deployments/<model>/<operation>?api-version=...` with an `api-key` header.
Every call is bounded: connect and per-read timeouts from the vendor's entry, so a hung
upstream fails the request (and its event is still emitted) instead of holding it forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from pipeline.gateway.config import Upstream


class UpstreamError(Exception):
    """The vendor failed or timed out. `status` is what the caller gets (502 or 504)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Vendor:
    name: str
    provider_name: str
    spec: Upstream
    client: httpx.AsyncClient
    _key: str | None

    @classmethod
    def open(cls, name: str, spec: Upstream) -> Vendor:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(spec.timeout_s, connect=spec.connect_timeout_s),
            limits=httpx.Limits(max_connections=spec.max_connections, max_keepalive_connections=spec.max_connections),
        )
        return cls(name, spec.provider_name or name, spec, client, spec.api_key())

    def _request(self, operation: str, model: str, body: bytes) -> httpx.Request:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        base = self.spec.base_url.rstrip("/")
        if self.spec.kind == "azure":
            url = f"{base}/openai/deployments/{model}/{operation}"
            params = {"api-version": self.spec.api_version}
            if self._key:
                headers["api-key"] = self._key
        else:
            url, params = f"{base}/{operation}", {}
            if self._key:
                headers["authorization"] = f"Bearer {self._key}"
        return self.client.build_request("POST", url, params=params, content=body, headers=headers)

    async def post(self, operation: str, model: str, body: bytes) -> httpx.Response:
        """A complete (non-streamed) response. Raises UpstreamError on failure or timeout."""
        try:
            return await self.client.send(self._request(operation, model, body))
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"{self.name} timed out ({type(exc).__name__})", 504) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.name} failed: {type(exc).__name__}: {exc}", 502) from exc

    async def open_stream(self, operation: str, model: str, body: bytes) -> httpx.Response:
        """A response whose body is still to be read (aiter_stream); close it when done."""
        try:
            return await self.client.send(self._request(operation, model, body), stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"{self.name} timed out ({type(exc).__name__})", 504) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.name} failed: {type(exc).__name__}: {exc}", 502) from exc

    async def aclose(self) -> None:
        await self.client.aclose()


async def sse_events(response: httpx.Response) -> AsyncIterator[bytes]:
    """The server-sent events of a streamed response, each as its raw bytes with its blank line,
    forwarded as soon as each is complete. Raises UpstreamError when the stream breaks or stalls."""
    buffer = b""
    try:
        async for chunk in response.aiter_bytes():
            buffer += chunk.replace(b"\r\n", b"\n")
            while (end := buffer.find(b"\n\n")) >= 0:
                yield buffer[:end + 2]
                buffer = buffer[end + 2:]
    except httpx.TimeoutException as exc:
        raise UpstreamError("stream stalled (read timeout)", 504) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"stream broke: {type(exc).__name__}", 502) from exc
    if buffer.strip():
        yield buffer + b"\n\n"
