"""The per-record checks of a verification spread over processes (the I/O edge of verify).

One record's own checks (JSON shape, RFC 8785 form, Ed25519 signature, SHA-256 leaf hash, typed
columns) need nothing of its neighbours and are nearly all of verify's CPU time; the chain scan
after them (links, seqs, forks, the tree) is cheap and stays in order in the calling process.
Records go out in chunks, several chunks in flight, and come back in order. Workers are started
with "spawn", never "fork": the parent may hold the embedded ClickHouse engine and its threads.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import Any

from aiaudit.pipeline.keys import KeyRing
from aiaudit.pipeline.store.kind_evidence import columns_of_stored as columns_of
from aiaudit.pipeline.verify.rules import Checked, StoredRecord, check_record

CHUNK = 250
_ring: KeyRing | None = None


def _start(keyring: KeyRing) -> None:
    global _ring
    _ring = keyring


def _check_chunk(chunk: list[tuple[Any, ...]]) -> list[Checked]:
    assert _ring is not None
    return [check_record(StoredRecord(*fields), _ring, columns_of if fields[5] is not None else None)
            for fields in chunk]


class CheckPool:
    """A Checker (pipeline/verify/rules.py) running check_record in `workers` processes."""

    def __init__(self, keyring: KeyRing, workers: int, *, chunk: int = CHUNK) -> None:
        self.chunk = chunk
        self.depth = 2 * workers
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start, initargs=(keyring,))

    def __call__(self, records: Iterable[StoredRecord]) -> Iterator[tuple[StoredRecord, Checked]]:
        pending: deque[tuple[list[StoredRecord], Future[list[Checked]]]] = deque()
        it = iter(records)
        while True:
            chunk = list(islice(it, self.chunk))
            if chunk:
                fields = [(r.origin, r.seq, r.payload, r.sig, r.leaf_hash, r.columns) for r in chunk]
                pending.append((chunk, self._pool.submit(_check_chunk, fields)))
            while pending and (len(pending) > self.depth or not chunk):
                sent, future = pending.popleft()
                yield from zip(sent, future.result())
            if not chunk:
                return

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> "CheckPool":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
