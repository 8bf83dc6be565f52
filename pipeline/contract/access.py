"""Access records: every read of evidence through aiaudit is itself evidence (pure).

An access record says who read (the principal), through what (the process that served the read,
when it is a console or the store API), when, which operation, the filter or statement, how many
rows and a digest of them, and whether the read was served. The process that served the read signs
it with a key of the analyst key set under the domain `aiaudit/access/v1\\n`
(pipeline/contract/analysts.py): an analyst's own key signs for that analyst only; a console key
(the store API's, a console's) signs for the principal it authenticated and says so (`via`).

    {"v": 1, "id": <32 hex>, "at": RFC 3339 UTC ms, "by": principal, ["via": serving process,]
     "op": "query", "what": text (at most 4096 characters), "what_sha256": <hex of the whole text>,
     "rows": n, "digest": "sha256:<hex>", "outcome": "served" | "refused", "host": name,
     "signature": {"kid", "sig"}}

The digest covers the rows as served: each row, its values encoded by `encode_value`, as compact
JSON and a newline (`ResultDigest`), so a result kept by the reader can be matched to the record.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import orjson

from aiaudit.pipeline.contract.signed_record import envelope
from aiaudit.pipeline.contract.signed_record import shape_problem as envelope_problem

ACCESS_VERSION = 1
MAX_WHAT_CHARS = 4096
OUTCOMES = ("served", "refused")
OP = re.compile(r"[a-z][a-z0-9_-]{0,31}")
PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+:/-]{0,254}")
HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
FIELDS = {"v", "id", "at", "by", "via", "op", "what", "what_sha256", "rows", "digest", "outcome", "host", "signature"}
REQUIRED = FIELDS - {"via", "signature"}


def encode_value(value: Any) -> Any:
    """A result value as JSON: bytes and times tagged, sequences as lists (the store API's wire form)."""
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # UUID, Decimal, IP addresses: their text


class ResultDigest:
    """SHA-256 over the rows as served, row by row (a stream need not be held to be digested)."""

    def __init__(self) -> None:
        self._h, self.rows = hashlib.sha256(), 0

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self._h.update(orjson.dumps([encode_value(v) for v in row]))
            self._h.update(b"\n")
            self.rows += 1

    def text(self) -> str:
        return "sha256:" + self._h.hexdigest()


def digest_of(rows: Iterable[Sequence[Any]]) -> tuple[int, str]:
    d = ResultDigest()
    d.add(rows)
    return d.rows, d.text()


def access_message(*, op: str, what: str, rows: int, digest: str, outcome: str, host: str,
                   at: datetime) -> dict[str, Any]:
    """An access record before it is signed (the signer adds `by`, `via` and `signature`).
    Raises ValueError for a field out of shape."""
    text = what if len(what) <= MAX_WHAT_CHARS else what[:MAX_WHAT_CHARS - 24] + f"... ({len(what):,} characters)"
    doc = {**envelope(ACCESS_VERSION, at), "op": op, "what": text,
           "what_sha256": hashlib.sha256(what.encode("utf-8", "replace")).hexdigest(), "rows": rows,
           "digest": digest, "outcome": outcome, "host": host[:253] if HOST.fullmatch(host[:253]) else "unknown"}
    problem = shape_problem({**doc, "by": "x"})
    if problem is not None:
        raise ValueError(problem)
    return doc


def shape_problem(doc: Any) -> str | None:
    """Why `doc` is not an access record in shape (signature aside), or None."""
    problem = envelope_problem(doc, version=ACCESS_VERSION, fields=FIELDS, required=REQUIRED)
    if problem is not None:
        return problem
    checks = (
        (type(doc["by"]) is str and PRINCIPAL.fullmatch(doc["by"]) is not None, "by is not a principal"),
        ("via" not in doc or (type(doc["via"]) is str and PRINCIPAL.fullmatch(doc["via"]) is not None),
         "via is not a name"),
        (type(doc["op"]) is str and OP.fullmatch(doc["op"]) is not None, "op is not an operation name"),
        (type(doc["what"]) is str and len(doc["what"]) <= MAX_WHAT_CHARS, f"what is not text of <= {MAX_WHAT_CHARS}"),
        (type(doc["what_sha256"]) is str and re.fullmatch(r"[0-9a-f]{64}", doc["what_sha256"]) is not None,
         "what_sha256 is not 64 hex"),
        (type(doc["rows"]) is int and 0 <= doc["rows"] < 2**53, "rows is not a count"),
        (type(doc["digest"]) is str and DIGEST.fullmatch(doc["digest"]) is not None, "digest is not sha256:<hex>"),
        (doc["outcome"] in OUTCOMES, f"outcome is not one of {OUTCOMES}"),
        (type(doc["host"]) is str and (doc["host"] == "unknown" or HOST.fullmatch(doc["host"]) is not None),
         "host is not a host name"),
    )
    return next((why for ok, why in checks if not ok), None)


def statement_text(sql: str, parameters: dict[str, Any] | None) -> str:
    """A read's `what` before it is cut: the statement on one line, then its parameters as compact
    JSON (values as text). One form whichever process served the read (the CLI's own client, or
    the sink's store API), so the same read is recorded the same way."""
    text = " ".join(sql.split())
    if parameters:
        text += " -- " + orjson.dumps({k: str(v) for k, v in parameters.items()}).decode()
    return text
