"""The operator's side of witnessing: send each chain's newest signed checkpoint to every
configured witness with a consistency proof from what that witness last cosigned, verify the
cosignature it returns under the witness's pinned key, and keep it (the cosignatures table).

It runs apart from the chain worker (`aiaudit witness submit`, once or `--every S`): a witness
that is down delays cosigning and never the chain. Proofs come from stored hashes
(pipeline/query/proofs.py); a 409 answer tells the witness's own size, and the submission is
retried once from there.
"""

from __future__ import annotations

import base64
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from aiaudit.pipeline import metrics, store
from aiaudit.pipeline.chain.note import NoteError, Verifier, add_signatures, cosignatures
from aiaudit.pipeline.query import proofs
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import checkpoints
from aiaudit.pipeline.witness.core import SIZE_CONTENT_TYPE, request_body

log = logging.getLogger("aiaudit.witness")
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    origin: str
    witness: str
    size: int
    status: str  # cosigned | already | refused: ... | unreachable: ...


def _post(url: str, body: bytes, timeout_s: float) -> tuple[int, str, str]:
    req = urllib.request.Request(url.rstrip("/") + "/add-checkpoint", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310  # an http(s) URL from the settings
            return resp.status, resp.headers.get("Content-Type", ""), resp.read(MAX_ANSWER_BYTES).decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read(MAX_ANSWER_BYTES).decode(errors="replace")


def submit_once(client: Client, settings: Settings, url: str, witness: Verifier, *, timeout_s: float = 10.0) -> list[Outcome]:
    """One round for one witness over every chain with signed checkpoints. Never raises for the
    witness's sake: an unreachable or refusing witness is an outcome, logged."""
    db = store.database(settings)
    _, origins = store.query_rows(client, *checkpoints.select_signed_origins(db))
    out = []
    for (origin,) in origins:
        _, notes = store.query_rows(client, *checkpoints.select_notes(db, str(origin)))
        size, note = max((int(s), str(n)) for s, n in notes)
        _, known = store.query_rows(client, *checkpoints.select_last_cosignature(db, str(origin), witness.name))
        old = int(known[0][0]) if known else 0
        if old == size and _still_valid(note, str(known[0][1]), witness):
            out.append(Outcome(str(origin), witness.name, size, "already"))
        else:
            out.append(_submit(client, settings, url, witness, str(origin), old, size, note, timeout_s))
        outcome = out[-1].status.split(":", 1)[0]
        metrics.WITNESS_SUBMISSIONS.labels(witness.name[:64], outcome).inc()
        if outcome in ("cosigned", "already"):
            metrics.COSIGNED_TIME.labels(witness.name[:64], metrics.chain_label(str(origin))).set_to_current_time()
    return out


def _still_valid(note: str, line: str, witness: Verifier) -> bool:
    """Whether a stored cosignature still verifies over the current checkpoint at that size."""
    try:
        return witness.name in cosignatures(add_signatures(note, [line if line.endswith("\n") else line + "\n"]),
                                            [witness])
    except NoteError:
        return False


def _submit(client: Client, settings: Settings, url: str, witness: Verifier, origin: str, old: int, size: int,
            note: str, timeout_s: float) -> Outcome:
    for _ in range(2):
        proof = [base64.b64decode(h) for h in proofs.consistency(client, settings, origin, old, size)["proof"]]
        try:
            status, ctype, body = _post(url, request_body(old, proof, note), timeout_s)
        except OSError as exc:
            log.warning("witness %s unreachable: %s", url, exc)
            return Outcome(origin, witness.name, size, f"unreachable: {exc}")
        if status == 409 and ctype.startswith(SIZE_CONTENT_TYPE) and body.strip().isdigit():
            theirs = int(body.strip())
            if theirs == old:  # the witness holds another tree at this size: our history is not the one it saw
                return Outcome(origin, witness.name, size, f"refused: HTTP 409: the witness cosigned another tree at size {old}")
            old = theirs  # the witness's own view; once more from there
            if old > size:
                return Outcome(origin, witness.name, size, f"refused: the witness has cosigned size {old}, larger")
            continue
        if status != 200:
            return Outcome(origin, witness.name, size, f"refused: HTTP {status}: {body.strip()[:200]}")
        try:
            lines = [line + "\n" for line in body.splitlines() if line]
            got = cosignatures(add_signatures(note, lines), [witness])
        except NoteError as exc:
            return Outcome(origin, witness.name, size, f"refused: the answer holds no valid cosignature ({exc})")
        if witness.name not in got:
            return Outcome(origin, witness.name, size, "refused: no cosignature by the pinned witness key")
        mine = [line for line in lines if line.startswith(f"\u2014 {witness.name} ")]
        store.insert(client, f"{store.database(settings)}.cosignatures",
                     [checkpoints.cosignature_row(origin, size, witness.name, mine[0], got[witness.name])],
                     checkpoints.COSIGNATURE_COLUMNS)
        return Outcome(origin, witness.name, size, "cosigned")
    return Outcome(origin, witness.name, size, "refused: the witness's size keeps changing")

