"""`aiaudit witness serve`: the C2SP tlog-witness HTTP interface, run by a party the operator
does not control, with its own key, its own state and its own list of logs it follows.

    POST /add-checkpoint        the spec's call (aiaudit.pipeline.witness.core.decide)
    GET  /latest?origin=<o>     (monitoring, an aiaudit extension) the newest cosigned size, root and
                                cosignature line for a log, so a verifier can compare its store with it
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from aiaudit.pipeline import metrics
from aiaudit.pipeline.chain.note import SIG_COSIGNATURE_V1, SIG_ED25519, NoteSigner, Verifier
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.keys import load_checkpoint_key
from aiaudit.pipeline.witness.core import MAX_REQUEST_BYTES, BadRequest, decide, parse_request
from aiaudit.pipeline.witness.state import WitnessState

log = logging.getLogger("aiaudit.witness")


class LogSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    origin: str | None = Field(default=None, min_length=1, max_length=512)
    origin_prefix: str | None = Field(default=None, min_length=1, max_length=512)
    key: str = Field(min_length=40, max_length=60)  # base64 of the 32-byte checkpoint public key


class WitnessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=256, pattern=r"^[^\s+]+$")
    key_file: Path
    state_file: Path
    logs: list[LogSpec] = Field(min_length=1)


class LogKeys:
    """Which log key verifies a given origin: an exact origin, or the longest matching prefix."""

    def __init__(self, specs: list[LogSpec]) -> None:
        self._exact: dict[str, bytes] = {}
        self._prefixes: list[tuple[str, bytes]] = []
        for spec in specs:
            try:
                raw = base64.b64decode(spec.key, validate=True)
            except ValueError as exc:
                raise ConfigError(f"witness config: log key {spec.key[:12]}… is not base64") from exc
            if len(raw) != 32 or (spec.origin is None) == (spec.origin_prefix is None):
                raise ConfigError("witness config: each log has a 32-byte key and exactly one of origin, origin_prefix")
            if spec.origin is not None:
                self._exact[spec.origin] = raw
            else:
                self._prefixes.append((spec.origin_prefix or "", raw))
        self._prefixes.sort(key=lambda p: -len(p[0]))

    def get(self, origin: str) -> Verifier | None:
        raw = self._exact.get(origin) or next((k for p, k in self._prefixes if origin.startswith(p)), None)
        return Verifier(origin, SIG_ED25519, raw) if raw is not None else None


def load_config(path: Path) -> WitnessConfig:
    try:
        return WitnessConfig.model_validate(yaml.safe_load(path.read_text()))
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: not a witness config: {exc}") from exc


def build_app(config: WitnessConfig) -> Starlette:
    key = load_checkpoint_key(config.key_file)
    witness = NoteSigner.local(config.name, SIG_COSIGNATURE_V1, key)
    logs = LogKeys(config.logs)
    state = WitnessState(config.state_file)
    lock = asyncio.Lock()

    async def add_checkpoint(request: Request) -> Response:
        answer = await answer_checkpoint(request)
        metrics.WITNESS_REQUESTS.labels(str(answer.status_code)).inc()
        return answer

    async def answer_checkpoint(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                return PlainTextResponse(f"request larger than {MAX_REQUEST_BYTES} bytes\n", 400)
        try:
            req = parse_request(body)
        except BadRequest as exc:
            return PlainTextResponse(f"{exc}\n", 400)
        async with lock:  # check and persist as one step, or a slow request could roll the state back
            origin = req.note.split("\n", 1)[0]
            answer = decide(req, logs, state.get(origin), witness, int(time.time()))
            if answer.cosigned is not None:
                await asyncio.to_thread(state.put, origin, answer.cosigned)
        if answer.status != 200:
            log.info("add-checkpoint %s: %d %s", origin[:120], answer.status, answer.body.strip()[:200])
        return Response(answer.body, answer.status, media_type=answer.content_type)

    async def latest(request: Request) -> Response:
        origin = request.query_params.get("origin", "")
        c = state.get(origin)
        if c is None:
            return JSONResponse({"error": f"no cosigned checkpoint for {origin[:200]}"}, 404)
        return JSONResponse({"origin": origin, "size": c.size, "root": base64.b64encode(c.root).decode(),
                             "cosignature": c.cosignature})

    app = Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
                            Route("/latest", latest, methods=["GET"])])
    app.state.witness = witness
    return app
