"""Verification runs and their report, shaped like `aws cloudtrail validate-logs`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.chain.keys import KeyRing
from pipeline.errors import Failure
from pipeline.store.evidence import columns_of
from pipeline.verify.reconcile import reconcile_emitters
from pipeline.verify.rules import ChainReport, StoredRecord, group_by_origin, scan_chain, sort_checking_order
from pipeline.verify.tree import TreeCheck


@dataclass
class VerifyReport:
    chains: list[ChainReport] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    emitters: int = 0
    checkpoints: int = 0  # signed checkpoints whose root was recomputed from the stored records
    warnings: list[str] = field(default_factory=list)  # not failures: records not yet checkpointed

    def close_tree(self, chain: ChainReport, tree: TreeCheck) -> None:
        """Add a chain's checkpoint findings (its records have all gone through tree.feed)."""
        after = tree.finish()
        chain.failures.extend(tree.failures)
        self.checkpoints += tree.checked
        if after:
            self.warnings.append(f"WARN {chain.origin}: {after} record(s) after the newest checkpoint "
                                 f"(size {tree.newest}) are not yet checkpointed")

    @property
    def ok(self) -> bool:
        return not self.failures and bool(self.chains)

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chains)

    def add_chain(self, report: ChainReport) -> None:
        self.chains.append(report)
        self.failures.extend(report.failures)

    def reconcile(self, *, start_at_zero: bool, window: tuple[str, str] | None = None) -> None:
        """Emitter gaps over every chained event, or over those whose ts lies in window [since, until)."""
        events = (e for c in self.chains for e in c.events if window is None or window[0] <= e[3] < window[1])
        self.emitters, gaps = reconcile_emitters(events, start_at_zero=start_at_zero)
        self.failures.extend(gaps)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "chains": [{"origin": c.origin, "records": c.records, "duplicates": c.duplicates, "first_ts": c.first_ts,
                        "last_ts": c.last_ts, "kids": sorted(c.kids)} for c in self.chains],
            "emitters": self.emitters,
            "checkpoints": self.checkpoints,
            "warnings": self.warnings,
            "failures": [{"origin": f.origin, "seq": f.seq, "reason": f.reason, "detail": f.detail} for f in self.failures],
        }

    def text(self) -> str:
        lines = [f.line() for f in self.failures] + self.warnings
        kids = sorted({k for c in self.chains for k in c.kids})
        dups = sum(c.duplicates for c in self.chains)
        lines += [
            "",
            "Results:",
            f"{len(self.chains)} chain(s), {self.records} record(s) checked"
            + (f" ({dups} exact duplicate row(s) collapsed)" if dups else ""),
            f"{self.emitters} emitter(s) reconciled",
            f"{self.checkpoints} signed checkpoint(s) matched by the records",
            f"{len(kids)} signing key(s): {', '.join(kids) if kids else '-'}",
        ]
        if not self.chains:
            lines.append("FAIL: no records to verify")
        else:
            lines.append(f"{len(self.failures)} failure(s)" if self.failures else "All chains valid")
        return "\n".join(lines)

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2)


def verify_export(records: Iterable[StoredRecord], keyring: KeyRing) -> VerifyReport:
    """Verify an export file's records (no typed columns): order, links, signatures, emitters."""
    report = VerifyReport()
    for chain in group_by_origin(records):
        ordered, reorders = sort_checking_order(chain)
        scanned = scan_chain(ordered, keyring)
        if scanned is not None:
            scanned.failures[:0] = reorders
            report.add_chain(scanned)
    report.reconcile(start_at_zero=True)
    return report


def verify_slices(slices: Iterable[tuple[str, int, int]], load: Callable[[str, int, int], Iterable[StoredRecord]],
                  keyring: KeyRing, *, whole: bool, reconcile: bool = True, window: tuple[str, str] | None = None,
                  progress: Callable[[str], None] | None = None,
                  checkpoints: Callable[[str], TreeCheck] | None = None,
                  checkpointed: Iterable[str] = ()) -> VerifyReport:
    """Verify chain slices (origin, first, last) loaded by `load`, typed columns included.

    whole=True checks each chain from seq 0; otherwise the record before each slice is loaded
    as its anchor so the link into the slice is checked too. reconcile=False skips the
    emitter check (right when only some chains are verified: emitters span partitions);
    `window` (RFC 3339 since, until) limits it to events of a time range.

    With `checkpoints` (whole chains only): each chain's records are held to its signed
    checkpoints (pipeline/verify/tree.py), and every origin in `checkpointed` (the chains that
    have checkpoints) must have records.
    """
    report = VerifyReport()
    seen: set[str] = set()
    for origin, first, last in slices:
        seen.add(origin)
        start = 0 if whole else max(0, first - 1)
        records = load(origin, start, last)
        tree = checkpoints(origin) if checkpoints is not None and whole else None
        if tree is not None:
            records = tree.feed(records)
        scanned = scan_chain(records, keyring, columns_of=columns_of, segment=start > 0)
        if scanned is not None:
            if tree is not None:
                report.close_tree(scanned, tree)
            report.add_chain(scanned)
            if progress:
                progress(f"{origin}: {scanned.records} records, {len(scanned.failures)} failure(s)")
    if checkpoints is not None and whole:
        for origin in sorted(set(checkpointed) - seen):  # checkpoints say records exist; none are stored
            tree = checkpoints(origin)
            empty = ChainReport(origin=origin)
            report.close_tree(empty, tree)
            report.add_chain(empty)
    if reconcile:
        report.reconcile(start_at_zero=whole, window=window)
    return report
