"""Where records to verify come from (I/O edge): the ClickHouse evidence table or an export file."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from clickhouse_connect.driver.client import Client

from aiaudit.pipeline import store
from aiaudit.pipeline.chain import merkle, record_v2
from aiaudit.pipeline.chain.kinds import KINDS, is_kind_chain
from aiaudit.pipeline.chain.note import Checkpoint, NoteError, Verifier, cosignatures
from aiaudit.pipeline.contract import format_ts
from aiaudit.pipeline.errors import Failure, InfraError
from aiaudit.pipeline.query.proofs import StoredHashes
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import checkpoints, evidence, kind_evidence
from aiaudit.pipeline.store.filters import Filters
from aiaudit.pipeline.verify import projections
from aiaudit.pipeline.verify.rules import Checker, StoredRecord
from aiaudit.pipeline.verify.run import VerifyReport, verify_sample, verify_slices
from aiaudit.pipeline.verify.tree import TreeCheck, Windows, open_checkpoints
from aiaudit.pipeline.verify.trust import Trust


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime):
        # The columns are DateTime64(6, 'UTC'); some clients hand them back naive.
        return format_ts(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, tuple):
        return list(value)
    return value


def chain_slices(client: Client, settings: Settings, filters: Filters) -> list[tuple[str, int, int]]:
    """(origin, first seq, last seq) of each chain with records matching `filters`: AI requests, and
    the chains of every other evidence kind unless the filter picks records by what they say."""
    db = store.database(settings)
    _, rows = store.query_rows(client, *evidence.select_chain_slices(db, filters))
    if not filters.selects_records:
        _, kinds = store.query_rows(client, *kind_evidence.select_chain_slices(db, filters))
        rows = [*rows, *kinds]
    return [(str(o), int(lo), int(hi)) for o, lo, hi in rows]


PAGE = 5_000  # seqs of one chain read per query: the engine holds a query's result whole (chDB does)


def records_from_store(client: Client, settings: Settings, origin: str, first: int, last: int) -> Iterator[StoredRecord]:
    """Every stored row of one chain between two seqs, duplicates included, in (seq) order, read
    PAGE seqs at a time (so memory does not grow with the chain)."""
    db = store.database(settings)
    for lo in range(first, last + 1, PAGE):
        hi = min(last, lo + PAGE - 1)
        if is_kind_chain(settings.kafka, origin):
            yield from _stored(client, *kind_evidence.select_chain_rows(db, origin, lo, hi),
                               checked=kind_evidence.CHECKED_COLUMNS, convert=kind_evidence.TIME_COLUMNS)
        else:
            yield from _stored(client, *evidence.select_chain_rows(db, origin, lo, hi))


def numbering_in_store(client: Client, settings: Settings, *, start_at_zero: bool, window: tuple[str, str] | None,
                       shard_rows: int | None = None, page: int | None = None, emitters_a_pass: int | None = None,
                       ) -> Callable[[VerifyReport, bool, list[tuple[str, int, int]]], None]:
    """The checks that need every event at once, in the store's SQL (a chain at a time, and the
    numbering in passes of at most `shard_rows` rows' numbers: memory does not grow with the store): an
    event chained twice in the stretch of a chain verified
    (`duplicate_event`), and, when reconciling, each emitter's numbering (`emitter_gap`,
    `emitter_seq_reused`, within the window when given). They read the typed columns, which the scan
    held to each record's signed payload (a row whose event_id, emitter_id or emitter_seq column
    differs from its payload is a `column_mismatch`)."""
    db = store.database(settings)

    def check(report: VerifyReport, reconcile: bool, loaded: list[tuple[str, int, int]]) -> None:
        chains = {c.origin: c for c in report.chains if not is_kind_chain(settings.kafka, c.origin)}
        origins = sorted(chains)
        if not origins:
            return
        for origin, first, last in loaded:
            if origin not in chains:
                continue
            _, dups = store.query_rows(client, *evidence.select_duplicate_events(db, origin, first, last))
            for event_id, seqs in dups:
                for seq in list(seqs)[1:]:
                    failure = Failure(origin, int(seq), "duplicate_event",
                                      f"event {event_id} already chained at seq {int(seqs[0])}")
                    chains[origin].failures.append(failure)
                    report.failures.append(failure)
        if not reconcile:
            return
        numbering = emitter_numbering(client, db, origins, window, shard_rows=shard_rows,
                                      emitters_a_pass=emitters_a_pass)
        report.emitters = len(numbering)
        for emitter_id, span in numbering.items():
            for emitter_seq, one, another in span.reused:
                report.failures.append(Failure(
                    f"emitter:{emitter_id}", emitter_seq, "emitter_seq_reused",
                    f"emitter_seq {emitter_seq} numbers events {one} and {another}: an emitter that restarts needs a "
                    "new emitter_id (or to resume its numbering)"))
        for emitter_id, lo, hi in emitter_gaps(client, db, origins, window, numbering, start_at_zero, page=page):
            span_text = f"{lo}" if lo == hi else f"{lo}..{hi}"
            report.failures.append(Failure(f"emitter:{emitter_id}", lo, "emitter_gap",
                                           f"emitter_seq {span_text} sent but not in any chain"))

    return check


SHARD_ROWS = 1_000_000  # numbered rows one pass of the numbering check aggregates (~130 MB of the engine's memory)
NUMBERS_PAGE = 1_000_000  # numbers of an emitter with gaps read a query (8 MB of them)
EMITTERS_A_PASS = 50_000  # emitters one pass answers for (the store API answers at most 100,000 rows)


@dataclass
class EmitterSpan:
    count: int = 0  # distinct numbers seen
    lowest: int = -1
    highest: int = -1
    reused: list[tuple[int, str, str]] = field(default_factory=list)  # (number, one event id, another)


def emitter_numbering(client: Client, db: str, origins: list[str], window: tuple[str, str] | None, *,
                      shard_rows: int | None = None, emitters_a_pass: int | None = None) -> dict[str, EmitterSpan]:
    """Each emitter's distinct numbers (how many, lowest, highest) and the numbers two events carry,
    in passes of at most `shard_rows` stored rows' numbers (by a hash of the number), so the engine's
    memory is bounded by the pass, not the store; and of at most about `emitters_a_pass` emitters (by
    a hash of the id), so no answer outgrows the store API's row cap."""
    _, counted = store.query_rows(client, *evidence.select_numbered_rows(db, origins, window))
    rows = int(counted[0][0]) if counted else 0
    shards = max(1, -(-rows // (shard_rows or SHARD_ROWS)))
    _, counted = store.query_rows(client, *evidence.select_emitter_count(db, origins, window))
    emitters = int(counted[0][0]) if counted else 0
    parts = max(1, -(-emitters // (emitters_a_pass or EMITTERS_A_PASS)))
    spans: dict[str, EmitterSpan] = {}
    listed = 0
    for part in range(parts):
        for shard in range(shards):
            _, found = store.query_rows(client, *evidence.select_emitter_shard(db, origins, window, shard, shards,
                                                                               part, parts))
            for emitter_id, count, lowest, highest, reused in found:
                span = spans.setdefault(str(emitter_id), EmitterSpan(lowest=int(lowest), highest=int(highest)))
                span.count += int(count)
                span.lowest, span.highest = min(span.lowest, int(lowest)), max(span.highest, int(highest))
                for seq, a, b in reused:
                    if listed < evidence.MAX_LISTED:
                        span.reused.append((int(seq), str(a), str(b)))
                        listed += 1
    for span in spans.values():
        span.reused.sort()
    return dict(sorted(spans.items()))


def emitter_gaps(client: Client, db: str, origins: list[str], window: tuple[str, str] | None,
                 spans: dict[str, EmitterSpan], start_at_zero: bool, *, page: int | None = None,
                 ) -> Iterator[tuple[str, int, int]]:
    """Each run of numbers an emitter skipped, (emitter_id, first missing, last missing), from 0 (or
    from its lowest number seen when not start_at_zero) to its highest, at most MAX_LISTED. Only an
    emitter whose count of numbers falls short of its span is read, `page` of its numbers a query,
    each page starting at its next number (so the queries are bounded by the numbers and the gaps
    listed, not by how far apart the numbers are)."""
    page = page or NUMBERS_PAGE
    listed = 0
    for emitter_id, span in spans.items():
        expected = 0 if start_at_zero else span.lowest
        if span.count == span.highest - expected + 1:
            continue
        lo: int | None = span.lowest
        while lo is not None:
            hi = min(span.highest, lo + page - 1)
            _, numbers = store.query_rows(client, *evidence.select_emitter_numbers(db, origins, window, emitter_id,
                                                                                   lo, hi))
            for (seq,) in numbers:
                if int(seq) > expected:
                    yield emitter_id, expected, int(seq) - 1
                    listed += 1
                    if listed >= evidence.MAX_LISTED:
                        return
                expected = int(seq) + 1
            lo = None
            if hi < span.highest:
                _, above = store.query_rows(client, *evidence.select_next_number(db, origins, window, emitter_id, hi))
                if above and int(above[0][0]):
                    lo = int(above[0][1])


def sampled_from_store(client: Client, settings: Settings, origin: str, filters: Filters) -> Iterator[StoredRecord]:
    """The stored rows of one chain that `filters` selects, duplicates included, in seq order."""
    return _stored(client, *evidence.select_matching_rows(store.database(settings), origin, filters))


def _stored(client: Client, sql: str, params: dict[str, Any], *, checked: tuple[str, ...] = evidence.CHECKED_COLUMNS,
            convert: tuple[str, ...] = evidence.TIME_COLUMNS + evidence.ARRAY_COLUMNS) -> Iterator[StoredRecord]:
    """Rows of `checked` columns, then payload, sig, leaf_hash, as StoredRecords. Only the `convert`
    columns come back as other types than the payload's (DateTime64, Array): convert just them
    (converting every value of every row was a third of verify's own time)."""
    n = len(checked)
    names, convert = checked, tuple(name for name in checked if name in convert)
    for row in store.stream_rows(client, sql, params, evidence.BYTES):
        columns = dict(zip(names, row))
        for name in convert:
            columns[name] = _normalise(columns[name])
        payload = row[n]
        yield StoredRecord(str(columns["origin"]), int(columns["seq"]),
                           payload if isinstance(payload, bytes) else payload.encode("utf-8"),
                           evidence.sig_bytes(row[n + 1]), str(row[n + 2]), columns)


def prover(client: Client, settings: Settings) -> Callable[[str, int], Callable[[int], tuple[int, list[bytes]]]]:
    """For a chain and a checkpoint size: the inclusion proof of a seq, from stored hashes (tiles cached)."""
    def for_chain(origin: str, size: int) -> Callable[[int], tuple[int, list[bytes]]]:
        hashes = StoredHashes(client, settings, origin)

        def proof_of(seq: int) -> tuple[int, list[bytes]]:
            return size, merkle.inclusion_proof(seq, size, hashes.subtree)
        return proof_of
    return for_chain


def checkpoint_checks(client: Client, settings: Settings, checkpoint_keys: Sequence[bytes], *,
                      witnesses: Sequence[Verifier] = (), min_cosignatures: int = 0,
                      windows: Windows | None = None) -> tuple[Callable[[str], TreeCheck], list[str]]:
    """A loader of each chain's verified checkpoints (and its stored cosignatures by the pinned
    witnesses), and the chains that have signed checkpoints."""
    db = store.database(settings)
    _, rows = store.query_rows(client, *checkpoints.select_signed_origins(db))

    def load(origin: str) -> TreeCheck:
        _, notes = store.query_rows(client, *checkpoints.select_notes(db, origin))
        _, stamps = store.query_rows(client, *checkpoints.select_timestamps(db, origin))  # the log's signed times
        cosigs = [(int(size), str(line)) for size, line in stamps]
        _, finals = store.query_rows(client, *checkpoints.select_finals(db, origin))
        if witnesses:
            _, found = store.query_rows(client, *checkpoints.select_cosignatures(db, origin))
            cosigs += [(int(size), str(line)) for size, line in found]
        return open_checkpoints(origin, [(int(size), str(note)) for size, note in notes], checkpoint_keys,
                                cosigs=cosigs, witnesses=witnesses, min_cosignatures=min_cosignatures,
                                windows=windows, finals=[(int(size), str(note)) for size, note in finals])

    return load, [str(o) for (o,) in rows]


def verify_store(client: Client, settings: Settings, trust: Trust, filters: Filters, *, whole: bool = True,
                 reconcile: bool = True, window: tuple[str, str] | None = None,
                 progress: Callable[[str], None] | None = None, checker: Checker | None = None,
                 tail: tuple[int, int] | None = None,
                 pins: Mapping[str, tuple[int, bytes]] | None = None) -> VerifyReport:
    """Verify the chains in ClickHouse that `filters` selects. Whole chains are also held to their
    signed checkpoints (under the trusted checkpoint keys), to the trust's `min_cosignatures` stored
    cosignatures of its witnesses, and to what each witness with a URL last cosigned for them.

    A filter that picks records by what they say (actor, vendor, policy version ...) verifies a
    sample: each selected record on its own and by its inclusion proof in its chain's newest signed
    checkpoint; the records it leaves out are not failures, and emitters are not reconciled.

    `tail` (end of the window, max age, unix seconds) applies the tail rule to every chain: its
    newest signed time (the log's timestamps, stored witness cosignatures) must be that recent."""
    keyring, checkpoint_keys, windows = trust.keyring, trust.checkpoint_keys, trust.windows or None
    pinned_witnesses, min_cosignatures = [v for v, _ in trust.witnesses], trust.min_cosignatures
    live_witnesses = [(url, v) for v, url in trust.witnesses if url]
    if filters.selects_records:
        load_cps = checkpoint_checks(client, settings, checkpoint_keys, witnesses=pinned_witnesses,
                                     min_cosignatures=min_cosignatures, windows=windows)[0] if checkpoint_keys else None
        return verify_sample([o for o, _, _ in chain_slices(client, settings, filters)],
                             lambda o: sampled_from_store(client, settings, o, filters), keyring,
                             checkpoints=load_cps, prover=prover(client, settings), progress=progress, tail=tail)
    checks: dict[str, Any] = {}
    if checkpoint_keys and not whole:
        checks = {"checkpoints": checkpoint_checks(client, settings, checkpoint_keys, witnesses=pinned_witnesses,
                                                   min_cosignatures=min_cosignatures, windows=windows)[0]}
    if whole and checkpoint_keys:
        load, origins = checkpoint_checks(client, settings, checkpoint_keys, witnesses=pinned_witnesses,
                                          min_cosignatures=min_cosignatures, windows=windows)
        wanted = [o for o in origins if filters.origin in (None, o)]
        views: dict[str, list[tuple[int, bytes, str]]] = {}
        if live_witnesses:
            known = {o for o, _, _ in chain_slices(client, settings, filters)} | set(wanted)
            for url, key in live_witnesses:
                for origin, view in witness_views(url, key, sorted(known)).items():
                    views.setdefault(origin, []).append(view)

        def with_witness(origin: str) -> TreeCheck:
            check = load(origin)
            _, states = store.query_rows(client, *checkpoints.select_states(store.database(settings), origin))
            check.expect_states(states)
            check.pinned = (pins or {}).get(origin)
            for size, root, name in views.get(origin, []):
                check.witnessed[size] = (root, name)
            return check

        checks = {"checkpoints": with_witness, "checkpointed": sorted(set(wanted) | set(views))}
    report = verify_slices(chain_slices(client, settings, filters),
                           lambda o, a, b: records_from_store(client, settings, o, a, b), keyring, whole=whole,
                           reconcile=reconcile, window=window, progress=progress, checker=checker, tail=tail,
                           numbering=numbering_in_store(client, settings, start_at_zero=whole, window=window), **checks)
    if whole and filters.origin is None and filters.since is None and filters.until is None:
        check_projections(client, settings, report, progress=progress)
    return report


def check_projections(client: Client, settings: Settings, report: VerifyReport, *,
                      progress: Callable[[str], None] | None = None) -> None:
    """Hold the tables people read (alerts, alert_status, dead_letters ...) to the chained records
    they are projected from (verify/projections.py); failures and counts go into `report`."""
    db, k = store.database(settings), settings.kafka
    _, rows = store.query_rows(client, *kind_evidence.select_payloads_of(db, [kind.name for kind in KINDS]))
    parsed = []
    for origin, seq, payload in rows:
        try:
            raw = payload if isinstance(payload, bytes) else str(payload).encode("utf-8")
            parsed.append((str(origin), int(seq), record_v2.parse_payload(raw)))
        except ValueError:
            continue  # a malformed record: the chain's own check reports it
    expected = projections.expected_rows(parsed, k)
    report.erasures = projections.erasures_of(parsed)
    for table, columns in projections.projected_tables(k).items():
        _, stored = store.query_rows(client, *kind_evidence.select_projection_rows(db, table, columns))
        check = projections.compare(table, expected.rows.get(table, {}), stored, k)
        report.projections[table] = check.rows
        report.outside += check.outside
        report.failures.extend(check.failures or [])
        if progress:
            progress(f"table {table}: {check.rows} row(s) matched by chained records, "
                     f"{len(check.failures or [])} failure(s)")




def witness_views(url: str, witness_key: Verifier, origins: Iterable[str], *,
                  timeout_s: float = 10.0) -> dict[str, tuple[int, bytes, str]]:
    """What the witness at `url` last cosigned for each chain: origin -> (size, root, witness name),
    each cosignature checked under the pinned witness key. Raises InfraError when the witness
    cannot be asked, ChainBroken-free: a cosignature that does not verify raises InfraError too."""
    out: dict[str, tuple[int, bytes, str]] = {}
    for origin in origins:
        req = url.rstrip("/") + "/latest?" + urllib.parse.urlencode({"origin": origin})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310  # an http(s) URL given by the auditor
                doc = json.loads(resp.read(64 * 1024))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                continue  # the witness never cosigned this chain
            raise InfraError(f"witness {url}: HTTP {exc.code} for {origin}") from exc
        except (OSError, ValueError) as exc:
            raise InfraError(f"witness {url} cannot be asked: {exc}") from exc
        try:
            size, root = int(doc["size"]), base64.b64decode(doc["root"], validate=True)
            note = Checkpoint(origin, size, root).text() + "\n" + str(doc["cosignature"])
            if witness_key.name not in cosignatures(note, [witness_key]):
                raise NoteError("no cosignature by the pinned witness key")
        except (KeyError, TypeError, ValueError, NoteError) as exc:
            raise InfraError(f"witness {url}: its view of {origin} does not verify: {exc}") from exc
        out[origin] = (size, root, witness_key.name)
    return out
