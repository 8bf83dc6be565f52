"""A local webhook receiver that does what a receiver should: checks each delivery's signature and
replay window (formats.verify_webhook), drops repeats by delivery id, and keeps what arrived.

For the demo and for trying a destinations file before pointing it at a real SOC endpoint. It
listens on loopback only, in a thread of its own; bodies are bounded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from aiaudit.pipeline.deliver.formats import DELIVERY_HEADER, WebhookRefused, uid_of, verify_webhook

MAX_BODY_BYTES = 1_048_576 + 4096


@dataclass(frozen=True)
class Received:
    delivery: str
    finding: dict[str, Any]
    at: float


class WebhookReceiver:
    def __init__(self, secret: bytes, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.secret, self.host = secret, host
        self.received: dict[str, Received] = {}  # by delivery id: a repeat is dropped
        self.repeats = 0
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = port
        self._thread = threading.Thread(target=self._serve, name="webhook-receiver", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the webhook receiver did not start")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/aiaudit"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.content.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return web.Response(status=413, text="too large")
        try:
            doc = verify_webhook(self.secret, dict(request.headers), body, time.time())
        except WebhookRefused as exc:
            with self._lock:
                self.refused.append(str(exc))
            return web.Response(status=401, text=str(exc))
        delivery = request.headers[DELIVERY_HEADER]
        with self._lock:
            if delivery in self.received:
                self.repeats += 1
            else:
                self.received[delivery] = Received(delivery, doc["finding"], time.time())
        return web.Response(status=200, text="received")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/aiaudit", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port)
        self._loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]  # the port bound (port=0: one the system chose)
        self._ready.set()
        self._loop.run_forever()

    def finding_uids(self) -> set[str]:
        with self._lock:
            return {uid_of(r.finding) for r in self.received.values()}

    def get(self, finding_uid: str) -> Received | None:
        with self._lock:
            return next((r for r in self.received.values() if uid_of(r.finding) == finding_uid), None)

    def close(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
