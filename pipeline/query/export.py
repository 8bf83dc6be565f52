"""`aiaudit export`: the records a filter selects, with the signed checkpoints, cosignatures and
inclusion proofs that let an auditor check them without the database (the file's format is
pipeline/export/format.py; records are the chain topic's own `Record.to_wire` lines).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import IO, Any

from clickhouse_connect.driver.client import Client
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline import store
from aiaudit.pipeline.chain import merkle
from aiaudit.pipeline.chain.note import NoteError, cosignature_time
from aiaudit.pipeline.contract import format_ts
from aiaudit.pipeline.export.format import (
    ExportedCheckpoint,
    Inclusion,
    RangeProof,
    checkpoint_line,
    header_line,
    inclusion_line,
    range_line,
    record_line_bytes,
)
from aiaudit.pipeline.query.proofs import StoredHashes
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import checkpoints, evidence, kind_evidence
from aiaudit.pipeline.store.filters import Filters


@dataclass
class ExportSummary:
    selection: str
    records: int = 0
    checkpoints: int = 0
    proofs: int = 0  # inclusion proof lines (one record each)
    ranges: int = 0  # range proof lines (a chain's whole stretch each)
    unproven: int = 0  # sampled records after their chain's newest signed checkpoint


def _filters_json(f: Filters) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fld in fields(f):
        value = getattr(f, fld.name)
        if fld.name == "limit" or value is None:
            continue
        out[fld.name] = format_ts(value) if isinstance(value, datetime) else value
    return out


def _line(out: IO[str], data: bytes) -> None:
    out.write(data.decode("utf-8") + "\n")


def _one_run(seqs: list[int], size: int) -> bool:
    """The records of a chain are one stretch, each seq once (no gap, no fork), starting under a
    checkpoint of `size`: one range proof covers them."""
    return len(seqs) == len(set(seqs)) == max(seqs) - min(seqs) + 1 and min(seqs) < size


def export_records(client: Client, settings: Settings, filters: Filters, out: IO[str], *, now: datetime,
                   operator: Ed25519PrivateKey, progress: Callable[[str], None] | None = None,
                   slices: Sequence[tuple[str, int, int]] | None = None) -> ExportSummary:
    """Write the header (sealed by the `operator` key over the record lines' counts and SHA-256),
    the matching records (or, with `slices`, every record of each (origin, first seq, last seq)),
    their chains' signed checkpoints (with stored cosignatures) and, for a sample, an inclusion
    proof of each record a checkpoint covers (with `slices`, one range proof of each chain's
    stretch instead, when it is whole: no gap, no fork).

    Exact duplicate rows are written once; two different records at one seq (a fork) are both
    written, so the verifier of the export sees the fork too. The record lines are spooled first
    (to a temporary file past 64 MiB): the header that seals them comes before them.
    """
    db = store.database(settings)
    summary = ExportSummary("sample" if filters.selects_records or filters.since or filters.until else "whole")
    seqs: dict[str, list[int]] = {}
    digest = hashlib.sha256()
    # AI requests, then (unless the filter picks requests by what they say) every other evidence kind.
    queries = [evidence.select_signed(db, filters)]
    if not filters.selects_records:
        queries.append(kind_evidence.select_signed(db, filters))
    if slices is not None:  # whole stretches of chains instead (a report: pipeline/report/pack.py)
        queries = [evidence.select_signed_slice(db, origin, first, last, table=table)
                   for origin, first, last in slices for table in evidence.CHAIN_TABLES]
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        for sql, params in queries:
            for origin, seq, payload, sig, leaf in store.stream_rows(client, sql, params, evidence.BYTES):
                wire = record_line_bytes(evidence.stored_record(origin, seq, payload, sig, leaf).to_wire())
                spool.write(wire)
                digest.update(wire)
                seqs.setdefault(str(origin), []).append(int(seq))
                summary.records += 1
        _line(out, header_line(summary.selection, _filters_json(filters), format_ts(now),
                               records={o: len(s) for o, s in seqs.items()}, records_sha256=digest.hexdigest(),
                               operator=operator))
        spool.seek(0)
        for spooled in spool:
            out.write(spooled.decode("utf-8"))
    for origin, chain_seqs in seqs.items():
        _, notes = store.query_rows(client, *checkpoints.select_notes(db, origin))
        _, cosigs = store.query_rows(client, *checkpoints.select_cosignatures(db, origin))
        _, stamps = store.query_rows(client, *checkpoints.select_timestamps(db, origin))  # the log's signed times
        newest: dict[tuple[int, str], tuple[int, str]] = {}  # (size, signer) -> (time, line): heartbeats repeat
        for size, line in [*stamps, *cosigs]:
            try:
                name, when = cosignature_time(str(line))
            except NoteError:
                continue  # not a cosignature line: nothing an auditor could check
            if when >= newest.get((int(size), name), (-1, ""))[0]:
                newest[(int(size), name)] = (when, str(line))
        by_size: dict[int, list[str]] = {}
        for (size, _), (_, line) in sorted(newest.items()):
            by_size.setdefault(size, []).append(line)
        signed = [(int(size), str(note)) for size, note in notes]
        _, final_rows = store.query_rows(client, *checkpoints.select_finals(db, origin))
        finals = {int(size): str(note) for size, note in final_rows}  # a closed chain's end, signed
        if summary.selection == "sample":
            signed = signed[-1:]  # the newest: every proof is against it
        for size, note in signed:
            _line(out, checkpoint_line(ExportedCheckpoint(origin, size, note, tuple(by_size.get(size, [])),
                                                          finals.get(size))))
            summary.checkpoints += 1
        if summary.selection == "sample" and signed and slices is not None and _one_run(chain_seqs, signed[0][0]):
            # A whole stretch (a report): one range proof for the records the checkpoint covers.
            size, first = signed[0][0], min(chain_seqs)
            last = min(max(chain_seqs), size - 1)
            proof = merkle.range_proof(first, last + 1, size, StoredHashes(client, settings, origin).subtree)
            _line(out, range_line(RangeProof(origin, first, last, size, tuple(proof))))
            summary.ranges += 1
            summary.unproven += max(chain_seqs) - last
        elif summary.selection == "sample" and signed:
            size = signed[0][0]
            hashes = StoredHashes(client, settings, origin)
            for seq in sorted(set(chain_seqs)):
                if seq >= size:
                    summary.unproven += 1
                    continue
                proof = merkle.inclusion_proof(seq, size, hashes.subtree)
                _line(out, inclusion_line(Inclusion(origin, seq, size, tuple(proof))))
                summary.proofs += 1
        elif summary.selection == "sample":
            summary.unproven += len(set(chain_seqs))
        if progress:
            progress(f"{origin}: {len(chain_seqs)} record(s), {len(signed)} checkpoint(s)")
    return summary
