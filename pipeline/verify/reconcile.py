"""Edge-to-chain completeness (invariant 4): every number an emitter gave is in some chain."""

from __future__ import annotations

from collections.abc import Iterable

from aiaudit.pipeline.errors import Failure


def _missing_ranges(have: list[int], low: int) -> list[tuple[int, int]]:
    """The gaps in sorted, distinct `have` from `low` on, as (first, last) ranges: O(n log n) in
    the numbers seen, never in their size (a forged 2^53-1 costs one range, not memory)."""
    out: list[tuple[int, int]] = []
    expected = low
    for n in have:
        if n > expected:
            out.append((expected, n - 1))
        expected = max(expected, n + 1)
    return out


def reconcile_emitters(events: Iterable[tuple[str, int, str, str]], *, start_at_zero: bool = True) -> tuple[int, list[Failure]]:
    """Find emitter sequence numbers missing from the chains.

    `events` are (emitter_id, emitter_seq, event_id, ts) of every chained record. Each emitter
    numbers from 0; a number between 0 (or its lowest seen, when start_at_zero is False,
    e.g. for a time-range check) and its highest seen that no record carries is reported, and
    so is a number that two different events carry (`emitter_seq_reused`). Returns (emitters
    seen, failures).
    """
    seqs: dict[str, dict[int, str]] = {}  # emitter -> emitter_seq -> the event id first seen with it
    failures: list[Failure] = []
    for emitter_id, emitter_seq, event_id, *_ in events:
        if emitter_id and type(emitter_seq) is int and emitter_seq >= 0:
            first = seqs.setdefault(emitter_id, {}).setdefault(emitter_seq, event_id)
            if first != event_id:  # one number, two events: a restarted emitter counting from 0 again
                failures.append(Failure(f"emitter:{emitter_id}", emitter_seq, "emitter_seq_reused",
                                        f"emitter_seq {emitter_seq} numbers events {first} and {event_id}: an emitter "
                                        "that restarts needs a new emitter_id (or to resume its numbering)"))
    for emitter_id, have in sorted(seqs.items()):
        ordered = sorted(have)
        low = 0 if start_at_zero else ordered[0]
        for lo, hi in _missing_ranges(ordered, low):
            span = f"{lo}" if lo == hi else f"{lo}..{hi}"
            failures.append(Failure(f"emitter:{emitter_id}", lo, "emitter_gap", f"emitter_seq {span} sent but not in any chain"))
    return len(seqs), failures
