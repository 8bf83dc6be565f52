"""A local stand-in for an LLM vendor speaking the OpenAI wire format (for the demo, the gateway
bench and the tests), and a way to serve ASGI apps.

Behaviour by requested model (the gateway forwards the model it decided on):

    fail-500   answers 500 with an OpenAI error body
    hang       never answers (the gateway's read timeout must end the request)
    stall      streams one chunk, then hangs
    redirect   answers 307 to /elsewhere/... on this server (a gateway must not follow it)
    anything   answers "echo: <last user message>" (so tests see what the vendor received);
               a prompt containing "leak" gets a reply with an e-mail address in it

It also serves `/jwks.json` (the public keys tests sign OIDC tokens with) and remembers every
request it received in `received` (and any that reached /elsewhere in `elsewhere`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class FakeUpstream:
    def __init__(self, jwks: dict[str, Any] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.elsewhere: list[dict[str, Any]] = []
        self.jwks = jwks or {"keys": []}
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/jwks.json", self.keys, methods=["GET"]),
            Route("/elsewhere/{path:path}", self.other_host, methods=["POST"]),
        ])

    async def other_host(self, request: Request) -> Response:
        self.elsewhere.append({"body": await request.body(), "headers": dict(request.headers)})
        return JSONResponse({"id": "x", "choices": [{"message": {"role": "assistant", "content": "redirected"}}]})

    async def keys(self, _request: Request) -> Response:
        return JSONResponse(self.jwks)

    async def chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.received.append({"body": body, "headers": dict(request.headers)})
        model = body["model"]
        if model == "redirect":
            return Response(b"", 307, headers={"location": str(request.url).replace("/v1/", "/elsewhere/v1/")})
        if model == "fail-500":
            return JSONResponse({"error": {"message": "upstream exploded", "type": "server_error"}}, 500)
        if model == "hang":
            await asyncio.sleep(3600)
        last = body["messages"][-1]["content"]
        reply = f"echo: {last}" + (" write to carol@example.com" if "leak" in last else "")
        usage = {"prompt_tokens": len(last.split()), "completion_tokens": len(reply.split()),
                 "total_tokens": len(last.split()) + len(reply.split())}
        if not body.get("stream"):
            return JSONResponse({"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                                 "model": model, "usage": usage,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": reply}}]})

        async def chunks() -> AsyncIterator[bytes]:
            words = reply.split(" ")
            for i, word in enumerate(words):
                chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
                         "choices": [{"index": 0, "delta": {"content": word if i == 0 else " " + word},
                                      "finish_reason": None}]}
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
                if model == "stall":
                    await asyncio.sleep(3600)
                await asyncio.sleep(0.01)
            final = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
                     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
            yield b"data: " + orjson.dumps(final) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def embeddings(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.received.append({"body": body, "headers": dict(request.headers)})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse({"object": "list", "model": body["model"],
                             "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                                      for i in range(len(inputs))],
                             "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}})


class Served:
    """An ASGI app served by uvicorn in a background thread on a free local port."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


if __name__ == "__main__":  # a standalone fake vendor for benchmarks: python -m aiaudit.pipeline.ops.vendor_standin PORT
    import sys

    uvicorn.run(FakeUpstream().app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
                loop="uvloop", http="httptools")
