"""The checks that need every event at once, done in the store's SQL (so verification's memory
does not grow with the store) find exactly what the same checks over events held in memory find:
an event chained twice in a chain, an emitter's skipped numbers (from 0, or within a time window),
and one number carried by two events; on a real embedded ClickHouse, with records built by the
real record code."""

from __future__ import annotations

import pytest

from aiaudit.pipeline import names, store
from aiaudit.pipeline.chain.record import ChainHead, ChainId, Source, build_record
from aiaudit.pipeline.keys import Ed25519Signer, KeyRing
from aiaudit.pipeline.store import evidence
from aiaudit.pipeline.store.filters import Filters
from aiaudit.pipeline.verify.run import verify_slices
from aiaudit.pipeline.verify.sources import chain_slices, numbering_in_store, records_from_store
from tests.unit.helpers import events

pytestmark = pytest.mark.integration


def _chain(origin: str, evs: list[dict], signer: Ed25519Signer) -> list[list]:
    head, rows = ChainHead.genesis(ChainId(origin)), []
    for i, ev in enumerate(evs):
        rec = build_record(head, signer, ev["occurred_at"], Source("ai.requests", 0, i), ev)
        head = rec.next_head(i)
        rows.append(evidence.row(rec))
    return rows


def _faults(report) -> set[tuple[str, int | None, str]]:
    return {(f.origin, f.seq, f.reason) for f in report.failures}


def test_sql_numbering_finds_what_the_in_memory_checks_find(settings, client):
    signer = Ed25519Signer.generate()
    keyring = KeyRing.from_jwks({"keys": [signer.jwk()]})
    e1 = events(80, seed=3, emitter_id="edge-1")
    e2 = events(12, seed=4, emitter_id="edge-2")
    for i, ev in enumerate(e2):
        ev["emitter_seq"] = i
    e2[7] = {**e2[7], "emitter_seq": 5}  # edge-2's number 5 on two events (and 7 never used)
    a = [ev for ev in e1[:60] if not 10 <= ev["emitter_seq"] <= 12]  # edge-1 skipped 10..12
    a.insert(30, {**a[5]})  # event a[5] chained again, at a later seq of the same chain
    b = e1[60:] + e2
    origin_a, origin_b = f"itest/{settings.chain.env}/ai.requests/p0/g1", f"itest/{settings.chain.env}/ai.requests/p1/g1"
    table = f"{store.database(settings)}.{names.EVIDENCE_TABLE}"
    store.insert(client, table, _chain(origin_a, a, signer) + _chain(origin_b, b, signer), evidence.COLUMNS)
    store.insert(client, table, _chain(origin_a, a, signer)[:3], evidence.COLUMNS)  # exact duplicates: benign

    slices = chain_slices(client, settings, Filters())

    def load(o, lo, hi):
        return records_from_store(client, settings, o, lo, hi)

    in_memory = verify_slices(slices, load, keyring, whole=True)
    in_sql = verify_slices(slices, load, keyring, whole=True,
                           numbering=numbering_in_store(client, settings, start_at_zero=True, window=None))
    want = {(origin_a, 30, "duplicate_event"), ("emitter:edge-1", 10, "emitter_gap"),
            ("emitter:edge-2", 5, "emitter_seq_reused"), ("emitter:edge-2", 7, "emitter_gap")}
    assert _faults(in_memory) == want, _faults(in_memory)
    assert _faults(in_sql) == want
    assert in_sql.emitters == in_memory.emitters == 2
    # In many passes (a store larger than one pass holds: 7 rows' numbers and one emitter a pass here)
    # and pages of 4 numbers: the same findings, each once.
    in_passes = verify_slices(slices, load, keyring, whole=True, numbering=numbering_in_store(
        client, settings, start_at_zero=True, window=None, shard_rows=7, page=4, emitters_a_pass=1))
    assert sorted((f.origin, f.seq, f.reason, f.detail) for f in in_passes.failures) == sorted(
        (f.origin, f.seq, f.reason, f.detail) for f in in_sql.failures)
    assert in_passes.emitters == 2
    assert [c.failures for c in in_sql.chains if c.origin == origin_a][0][0].reason == "duplicate_event"
    assert not any(c.events for c in in_sql.chains)  # nothing per record kept
    assert in_sql.records == in_memory.records == len(a) + len(b)

    # A time window: numbering counts from each emitter's lowest number inside it.
    since, until = a[20]["occurred_at"], b[5]["occurred_at"]
    window = (since, until)
    in_memory = verify_slices(slices, load, keyring, whole=False, window=window)
    in_sql = verify_slices(slices, load, keyring, whole=False, window=window,
                           numbering=numbering_in_store(client, settings, start_at_zero=False, window=window))
    assert _faults(in_sql) == _faults(in_memory)
    assert in_sql.emitters == in_memory.emitters
    in_passes = verify_slices(slices, load, keyring, whole=False, window=window, numbering=numbering_in_store(
        client, settings, start_at_zero=False, window=window, shard_rows=5, page=3))
    assert _faults(in_passes) == _faults(in_memory)


class _Counting:
    """The store client, counting the statements verify sends it."""

    def __init__(self, client) -> None:
        self.client, self.queries = client, 0

    def query(self, *args, **kwargs):
        self.queries += 1
        return self.client.query(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_a_number_far_above_the_rest_is_one_gap_read_in_a_few_queries(settings, client):
    """An emitter numbering one event 2^53 - 1 (the largest a signed record carries; a writer to the
    store could set the column higher still): one gap, found without a page query for every million
    numbers between (2^33 of them at the bench's page)."""
    signer = Ed25519Signer.generate()
    keyring = KeyRing.from_jwks({"keys": [signer.jwk()]})
    evs = events(6, seed=5, emitter_id="edge-far")
    for i, ev in enumerate(evs):
        ev["emitter_seq"] = i
    evs[5] = {**evs[5], "emitter_seq": 2**53 - 1}
    origin = f"itest/{settings.chain.env}/ai.requests/p0/g1"
    table = f"{store.database(settings)}.{names.EVIDENCE_TABLE}"
    store.insert(client, table, _chain(origin, evs, signer), evidence.COLUMNS)
    counting = _Counting(client)
    slices = chain_slices(client, settings, Filters())
    report = verify_slices(slices, lambda o, lo, hi: records_from_store(client, settings, o, lo, hi), keyring,
                           whole=True, numbering=numbering_in_store(counting, settings, start_at_zero=True, window=None,
                                                                    page=4))
    assert [(f.origin, f.seq, f.reason, f.detail) for f in report.failures] == [
        ("emitter:edge-far", 5, "emitter_gap", f"emitter_seq 5..{2**53 - 2} sent but not in any chain")]
    assert counting.queries < 20, counting.queries
