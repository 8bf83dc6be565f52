"""The checkpoint signer's HTTP service (`aiaudit signer serve`): POST /sign, GET /state.

Every request carries `Authorization: Bearer <token>` (AIAUDIT_SIGNER_TOKEN, the same variable
on the chain worker's side); anything else is 401. What the signer signed is kept per origin in
one JSON file, written atomically and persisted before the answer leaves, so a signature it handed
out is never forgotten after a kill -9.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aiaudit.pipeline.chain.note import SIG_COSIGNATURE_V1, SIG_ED25519, NoteSigner
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.files import replace_atomically
from aiaudit.pipeline.keys import load_checkpoint_key
from aiaudit.pipeline.signer.core import MAX_REQUEST_BYTES, BadRequest, Signed, decide, parse_request

log = logging.getLogger("aiaudit.signer")
TOKEN_ENV = "AIAUDIT_SIGNER_TOKEN"
MIN_TOKEN_BYTES = 16


@dataclass(frozen=True)
class SignerConfig:
    key_file: Path
    state_file: Path
    token: str
    adopt: bool = False


def token_from_env(env: dict[str, str] | None = None) -> str:
    token = (os.environ if env is None else env).get(TOKEN_ENV, "")
    if len(token.encode()) < MIN_TOKEN_BYTES or not token.isprintable() or " " in token:
        raise ConfigError(f"{TOKEN_ENV} must hold the signer's token: at least {MIN_TOKEN_BYTES} printable "
                          "characters, no spaces (the chain worker sends the same one)")
    return token


class SignerState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._state = self._read()

    def _read(self) -> dict[str, Signed]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: cannot read the signer state: {exc}; refusing to start (a signer "
                              "that forgot what it signed could sign a rewrite)") from exc
        try:
            return {str(o): Signed(int(v["size"]), tuple(bytes.fromhex(h) for h in v["range"]), v.get("final") is True)
                    for o, v in raw.items()}
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{self.path}: the signer state is malformed: {exc}") from exc

    def get(self, origin: str) -> Signed | None:
        return self._state.get(origin)

    def put(self, origin: str, signed: Signed) -> None:
        new = {**self._state, origin: signed}
        data = json.dumps({o: {"size": s.size, "range": [h.hex() for h in s.hashes], **({"final": True} if s.final else {})}
                           for o, s in sorted(new.items())})
        replace_atomically(self.path, data.encode())
        self._state = new


def build_app(config: SignerConfig) -> Starlette:
    key = load_checkpoint_key(config.key_file)
    state = SignerState(config.state_file)
    lock = asyncio.Lock()
    expected = f"Bearer {config.token}".encode()

    def authorised(request: Request) -> bool:
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode("utf-8", "replace"), expected)

    async def sign(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "a Bearer token is required"}, 401)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                return JSONResponse({"error": f"request larger than {MAX_REQUEST_BYTES} bytes"}, 400)
        try:
            req = await asyncio.to_thread(parse_request, bytes(body))
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, 400)
        note_key = NoteSigner.local(req.origin, SIG_ED25519, key)
        clock = NoteSigner.local(req.origin, SIG_COSIGNATURE_V1, key)
        async with lock:  # decide and persist as one step: two requests never both extend the same size
            last = state.get(req.origin)
            answer = await asyncio.to_thread(decide, req, last, note_key, clock, int(time.time()), adopt=config.adopt)
            if answer.signed is not None:
                if last is None and req.old_size:
                    log.warning("adopted chain %s at size %d (--adopt)", req.origin, req.old_size)
                await asyncio.to_thread(state.put, req.origin, answer.signed)
        if answer.status != 200:
            level = logging.INFO if str(answer.body.get("reason", "")).startswith("behind") else logging.ERROR
            log.log(level, "refused to sign %s: %s", req.origin[:200], answer.body.get("reason"))
        return JSONResponse(answer.body, answer.status)

    async def current(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "a Bearer token is required"}, 401)
        origin = request.query_params.get("origin", "")
        s = state.get(origin)
        if s is None:
            return JSONResponse({"size": 0, "range": []})
        return JSONResponse({"size": s.size, "range": [base64.b64encode(h).decode() for h in s.hashes]})

    return Starlette(routes=[Route("/sign", sign, methods=["POST"]), Route("/state", current, methods=["GET"])])
