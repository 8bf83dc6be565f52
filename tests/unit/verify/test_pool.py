"""Checks spread over processes give the same report as checks made inline, failures included."""

from __future__ import annotations

import dataclasses

from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.store.evidence import columns_of
from aiaudit.pipeline.verify.pool import CheckPool
from aiaudit.pipeline.verify.rules import scan_chain
from tests.unit.helpers import build_chain, keyring_of, stored

SIGNER = Ed25519Signer.generate()
RING = keyring_of(SIGNER)


def tampered():
    recs = stored(build_chain(1200, SIGNER))
    recs[5] = dataclasses.replace(recs[5], sig=bytes(64))  # bad signature
    recs[700] = dataclasses.replace(recs[700], columns={**recs[700].columns, "actor_id": "mallory"})
    recs[901] = dataclasses.replace(recs[901], payload=b"{not json")
    del recs[1000]  # a gap
    recs.insert(300, recs[300])  # an exact duplicate
    return recs


def failures(report):
    return [(f.seq, f.reason, f.detail) for f in report.failures]


def test_parallel_checks_give_the_inline_report():
    recs = tampered()
    inline = scan_chain(recs, RING, columns_of=columns_of)
    with CheckPool(RING, 2, chunk=97) as pool:  # chunks that do not divide the chain
        parallel = scan_chain(recs, RING, columns_of=columns_of, checker=pool)
        again = scan_chain(recs[:10], RING, columns_of=columns_of, checker=pool)  # the pool is reusable
    assert failures(parallel) == failures(inline)
    assert {r for _, r, _ in failures(inline)} >= {"bad_signature", "column_mismatch", "malformed_payload", "gap"}
    assert (parallel.records, parallel.duplicates, parallel.events, parallel.kids) == \
           (inline.records, inline.duplicates, inline.events, inline.kids)
    assert again.records == 10


def test_parallel_checks_of_a_kind_chain_hold_its_own_columns():
    """A chain of another evidence kind (format v2) through the pool: its typed columns are the
    kind_evidence table's, and a column changed in the store is found, as inline."""
    from aiaudit.pipeline.store.kind_evidence import columns_of_stored
    from tests.unit.helpers import build_kind_chain

    recs = stored(build_kind_chain([b"a", b"b", b"c"], SIGNER))
    recs[1] = dataclasses.replace(recs[1], columns={**recs[1].columns, "kind": "policy"})
    inline = scan_chain(recs, RING, columns_of=columns_of_stored)
    with CheckPool(RING, 2, chunk=2) as pool:
        parallel = scan_chain(recs, RING, columns_of=columns_of_stored, checker=pool)
    assert failures(parallel) == failures(inline) == [(1, "column_mismatch", "column kind = 'policy', payload says "
                                                          "'finding'")]
    assert parallel.kind == "finding"
