"""The chain worker's side of the checkpoint signer: a Notary over HTTP (pipeline/signer/core.py
has the protocol). Every call is bounded; a signer that does not answer is NotaryUnavailable (the
chain goes on, its checkpoint waits), a refusal is NotaryRefused with the signer's reason."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request

from aiaudit.pipeline.chain.checkpoint import NotaryRefused, NotaryUnavailable, open_final
from aiaudit.pipeline.chain.merkle import CompactRange
from aiaudit.pipeline.chain.note import SIG_ED25519, Checkpoint, NoteError, Verifier, open_checkpoint
from aiaudit.pipeline.signer.core import request_body

MAX_ANSWER_BYTES = 256 * 1024


class RemoteNotary:
    remote = True

    def __init__(self, url: str, token: str, public_key: bytes, *, timeout_s: float = 10.0) -> None:
        self.url, self.token, self.public_key, self.timeout_s = url.rstrip("/"), token, public_key, timeout_s

    def _call(self, req: urllib.request.Request) -> dict[str, object]:
        req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310  # the configured signer URL
                status, text = resp.status, resp.read(MAX_ANSWER_BYTES)
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read(MAX_ANSWER_BYTES)
        except (OSError, ValueError) as exc:
            raise NotaryUnavailable(f"checkpoint signer {self.url}: {exc}") from exc
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise NotaryUnavailable(f"checkpoint signer {self.url}: HTTP {status}, not a JSON answer")
        if status == 409 and type(doc.get("signed_size")) is int:
            raise NotaryRefused(int(doc["signed_size"]), str(doc.get("reason", ""))[:500])
        if status != 200:
            raise NotaryUnavailable(f"checkpoint signer {self.url}: HTTP {status}: {str(doc.get('error'))[:300]}")
        return doc

    def signed_tree(self, origin: str) -> CompactRange:
        q = urllib.parse.urlencode({"origin": origin})
        doc = self._call(urllib.request.Request(f"{self.url}/state?{q}"))
        size, hashes = doc.get("size"), doc.get("range")
        try:
            if type(size) is not int or not isinstance(hashes, list):
                raise TypeError("size and range")
            return CompactRange(size, [base64.b64decode(str(h), validate=True) for h in hashes])
        except (TypeError, ValueError) as exc:
            raise NotaryUnavailable(f"checkpoint signer {self.url}: a malformed state answer ({exc})") from exc

    def sign(self, origin: str, base: CompactRange, leaves: bytes, tree: CompactRange,
             unix_s: int, *, final: bool = False) -> tuple[str, str]:
        doc = self._call(urllib.request.Request(f"{self.url}/sign", data=request_body(origin, base, leaves, final=final),
                                                method="POST", headers={"Content-Type": "application/json"}))
        note, stamp = doc.get("note"), doc.get("timestamp")
        if not isinstance(note, str) or not isinstance(stamp, str):
            raise NotaryUnavailable(f"checkpoint signer {self.url}: no note and timestamp in the answer")
        try:  # the answer is held to the pinned key and to the tree this worker built
            verifier = Verifier(origin, SIG_ED25519, self.public_key)
            cp = open_final(note, origin, [verifier]) if final else open_checkpoint(note, verifier)
        except NoteError as exc:
            raise NotaryUnavailable(f"checkpoint signer {self.url}: its note does not verify ({exc})") from exc
        if cp != Checkpoint(origin, tree.size, tree.root()):
            raise NotaryUnavailable(f"checkpoint signer {self.url}: it signed ({cp.size}, {cp.root.hex()[:16]}…), "
                                    f"not this chain's tree ({tree.size}, {tree.root().hex()[:16]}…)")
        return note, stamp
