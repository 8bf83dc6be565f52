"""Edge-to-chain completeness (invariant 4): every number an emitter gave is in some chain."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.errors import Failure


def _ranges(missing: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in missing:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def reconcile_emitters(events: Iterable[tuple[str, int, str, str]], *, start_at_zero: bool = True) -> tuple[int, list[Failure]]:
    """Find emitter sequence numbers missing from the chains.

    `events` are (emitter_id, emitter_seq, event_id, ts) of every chained record. Each emitter
    numbers from 0; a number between 0 (or its lowest seen, when start_at_zero is False,
    e.g. for a time-range check) and its highest seen that no record carries is reported.
    Returns (emitters seen, failures).
    """
    seqs: dict[str, set[int]] = {}
    for emitter_id, emitter_seq, *_ in events:
        if emitter_id and emitter_seq >= 0:
            seqs.setdefault(emitter_id, set()).add(emitter_seq)
    failures: list[Failure] = []
    for emitter_id, have in sorted(seqs.items()):
        low = 0 if start_at_zero else min(have)
        missing = [n for n in range(low, max(have) + 1) if n not in have]
        for first, last in _ranges(missing):
            span = f"{first}" if first == last else f"{first}..{last}"
            failures.append(Failure(f"emitter:{emitter_id}", first, "emitter_gap", f"emitter_seq {span} sent but not in any chain"))
    return len(seqs), failures
