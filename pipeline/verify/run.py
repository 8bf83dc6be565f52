"""Verification runs and their report, shaped like `aws cloudtrail validate-logs`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiaudit.pipeline.errors import Failure
from aiaudit.pipeline.export.format import ExportFile, seal_problem
from aiaudit.pipeline.keys import KeyRing
from aiaudit.pipeline.store.kind_evidence import columns_of_stored
from aiaudit.pipeline.verify.reconcile import reconcile_emitters
from aiaudit.pipeline.verify.rules import (
    ChainReport,
    Checker,
    StoredRecord,
    group_by_origin,
    scan_chain,
    sort_checking_order,
)
from aiaudit.pipeline.verify.tree import TreeCheck, open_checkpoints, utc_text

if TYPE_CHECKING:
    from aiaudit.pipeline.verify.trust import Trust


@dataclass
class VerifyReport:
    chains: list[ChainReport] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    emitters: int = 0
    checkpoints: int = 0  # signed checkpoints whose root was recomputed from the stored records
    warnings: list[str] = field(default_factory=list)  # not failures: records not yet checkpointed
    sample: bool = False  # a filtered selection: records proven included, emitters not reconciled
    proven: int = 0  # sampled records whose inclusion proof leads to a signed checkpoint's root
    tail: tuple[int, int] | None = None  # the tail rule as applied: (judged at, max age), unix seconds
    states: int = 0  # stored tree states (root, compact range) recomputed from the records and compared
    anchors: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # origin -> newest matched checkpoint
    projections: dict[str, int] = field(default_factory=dict)  # table -> rows matched by chained records
    outside: int = 0  # dead_letters rows the sink made of topics no kind chains (not checked)
    erasures: list[dict[str, Any]] = field(default_factory=list)  # what the chained erasure records say

    def close_tree(self, chain: ChainReport, tree: TreeCheck) -> None:
        """Add a chain's checkpoint findings (its records have all gone through tree.feed)."""
        after = tree.finish()
        chain.failures.extend(tree.failures)
        self.checkpoints += tree.checked
        self.states += tree.states_checked
        anchor = tree.anchor()
        if anchor is not None and not tree.failures:
            self.anchors[chain.origin] = anchor
        if after:
            self.warnings.append(f"WARN {chain.origin}: {after} record(s) after the newest checkpoint "
                                 f"(size {tree.newest}) are not yet checkpointed")

    def close_sample(self, chain: ChainReport, tree: TreeCheck | None) -> None:
        """Add a sampled chain's inclusion findings (its records have all gone through tree.feed_sample)."""
        if tree is None:
            self.warnings.append(f"WARN {chain.origin}: no signed checkpoint to prove inclusion against: "
                                 f"{chain.records} record(s) checked one by one only")
            return
        after = tree.finish_sample()
        chain.failures.extend(tree.failures)
        self.proven += tree.proven
        if after:
            self.warnings.append(f"WARN {chain.origin}: {after} sampled record(s) after the newest checkpoint "
                                 f"(size {tree.newest}): inclusion not yet provable")

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

    def kind_of_chain(self) -> dict[str, str]:
        """origin -> the kind of evidence its records are (chains none of whose records could be read: absent)."""
        return {c.origin: c.kind for c in self.chains if c.kind}

    def kinds(self) -> dict[str, dict[str, int]]:
        """kind -> {chains, records} checked."""
        out: dict[str, dict[str, int]] = {}
        for c in self.chains:
            entry = out.setdefault(c.kind or "unknown", {"chains": 0, "records": 0})
            entry["chains"] += 1
            entry["records"] += c.records
        return dict(sorted(out.items()))

    def _erasure_lines(self, listed: int = 20) -> list[str]:
        """Content erased, as the chained erasure records say: erased, not tampered with."""
        if not self.erasures:
            return []
        count = {a: sum(1 for e in self.erasures if e["action"] == a) for a in ("erase", "expire", "refused", "hold",
                                                                                  "release")}
        lines = [f"content erased (records and chains intact): {count['erase']} erasure(s), {count['expire']} "
                 f"retention expiry(ies); {count['refused']} refused under legal hold; "
                 f"{count['hold'] + count['release']} legal hold(s) set or lifted"]
        for e in self.erasures[-listed:]:
            lines.append(f"  {e['at']} {e['action']} {'subject ' + e['subject'] if e['subject'] else 'event ' + str(e['event_id'])}"
                         f" by {e['by']}{' via ' + e['via'] if e.get('via') else ''} ({e['origin']} seq {e['seq']}): "
                         f"{e['reason'][:120]}")
        if len(self.erasures) > listed:
            lines.append(f"  ... and {len(self.erasures) - listed} earlier (verify --json lists them)")
        return lines

    def to_json(self) -> dict[str, Any]:
        kinds = self.kind_of_chain()
        return {
            "ok": self.ok,
            "records": self.records,
            "chains": [{"origin": c.origin, "kind": c.kind or None, "records": c.records, "duplicates": c.duplicates,
                        "first_ts": c.first_ts, "last_ts": c.last_ts, "kids": sorted(c.kids)} for c in self.chains],
            "kinds": self.kinds(),
            "emitters": self.emitters,
            "checkpoints": self.checkpoints,
            "tree_states": self.states,
            "projections": self.projections,
            "erasures": self.erasures[:1000],
            "sample": self.sample,
            "proven_included": self.proven,
            "warnings": self.warnings,
            "tail_rule": None if self.tail is None else {"as_of": utc_text(self.tail[0]), "max_age_s": self.tail[1]},
            "failures": [{"origin": f.origin, "kind": kinds.get(f.origin), "seq": f.seq, "reason": f.reason,
                          "detail": f.detail, **({"where": f.where} if f.where else {})} for f in self.failures],
        }

    def text(self) -> str:
        kinds = self.kind_of_chain()
        lines = [f.line(kinds.get(f.origin, "")) for f in self.failures] + self.warnings
        kids = sorted({k for c in self.chains for k in c.kids})
        dups = sum(c.duplicates for c in self.chains)
        lines += [
            "",
            "Results:",
            f"{len(self.chains)} chain(s), {self.records} record(s) checked"
            + (f" ({dups} exact duplicate row(s) collapsed)" if dups else ""),
            *([("by kind: " + ", ".join(f"{k} {v['records']} in {v['chains']} chain(s)"
                                          for k, v in self.kinds().items()))] if len(self.kinds()) > 1 else []),
            *([f"a sample: {self.proven} record(s) proven included in signed checkpoints; records the filter "
               "left out were not checked and emitters were not reconciled"] if self.sample else
              [f"{self.emitters} emitter(s) reconciled", f"{self.checkpoints} signed checkpoint(s) matched by the records",
               *([f"{self.states} stored tree state(s) matched by the records"] if self.states else [])]),
            *([f"{sum(self.projections.values())} row(s) of {', '.join(sorted(self.projections))} matched by the "
               "chained records they come from"] if self.projections else []),
            *([f"{self.outside} dead letter row(s) the sink made of topics no evidence kind chains (not checked)"]
              if self.outside else []),
            *self._erasure_lines(),
            f"{len(kids)} signing key(s): {', '.join(kids) if kids else '-'}",
            *([f"tail rule: every chain signed a time within {self.tail[1]}s of {utc_text(self.tail[0])}"]
              if self.tail is not None else []),
        ]
        if not self.chains:
            lines.append("FAIL: no records to verify")
        else:
            lines.append(f"{len(self.failures)} failure(s)" if self.failures else "All chains valid")
        return "\n".join(lines)

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2)


ProofOf = Callable[[int], "tuple[int, Sequence[bytes]] | None"]


def _check_chain(report: VerifyReport, records: Iterable[StoredRecord], keyring: KeyRing, tree: TreeCheck | None, *,
                 columns: bool = False, segment: bool = False, proof_of: ProofOf | None = None,
                 reorders: list[Failure] | None = None, checker: Checker | None = None,
                 numbering: bool = True) -> ChainReport | None:
    """Scan one chain (a whole chain, a slice, or with proof_of a sample) and add it to the report."""
    if tree is not None:
        records = tree.feed_sample(records, proof_of) if proof_of is not None else tree.feed(records)
    scanned = scan_chain(records, keyring, columns_of=columns_of_stored if columns else None, segment=segment,
                         sample=proof_of is not None, checker=checker, numbering=numbering)
    if scanned is None:
        return None
    scanned.failures[:0] = reorders or []
    if proof_of is not None:
        report.close_sample(scanned, tree)
    elif tree is not None:
        report.close_tree(scanned, tree)
    report.add_chain(scanned)
    return scanned


def _missing_chains(report: VerifyReport, checkpointed: Iterable[str], checks: Callable[[str], TreeCheck],
                    tail: tuple[int, int] | None = None) -> None:
    """Chains whose checkpoints say records exist, and of which none are stored: `truncated`."""
    seen = {c.origin for c in report.chains}
    for origin in sorted(set(checkpointed) - seen):
        empty, tree = ChainReport(origin=origin), checks(origin)
        report.close_tree(empty, tree)
        if tail is not None:
            tree.failures.clear()
            tree.tail_rule(*tail)
            empty.failures.extend(tree.failures)
        report.add_chain(empty)


def _tail(report: VerifyReport, chain: ChainReport, tree: TreeCheck, tail: tuple[int, int]) -> None:
    """The tail rule for one chain already in the report: its failures join the chain's and the report's."""
    before = len(tree.failures)
    tree.tail_rule(*tail)
    new = tree.failures[before:]
    chain.failures.extend(new)
    report.failures.extend(new)


def verify_export(file: ExportFile, trust: Trust, *, checker: Checker | None = None,
                  tail: tuple[int, int] | None = None, allow_unanchored: bool = False,
                  pins: Mapping[str, tuple[int, bytes]] | None = None) -> VerifyReport:
    """Verify an export file without the database: each chain's order, links, signatures and hashes;
    a whole export also against its signed checkpoints (truncation, rewrites) and its emitters; a
    sample by each record's inclusion proof to its chain's signed checkpoint.

    Every chain must be anchored in a signed checkpoint checked under a pinned key (`unanchored`
    otherwise: removing a chain's newest records, or its checkpoint lines, would go unseen); with
    allow_unanchored (older exports) that is a warning. Every malformed line of the file
    (`file.problems`) is a failure naming its line; an inclusion proof whose record is absent is
    `orphan_proof`. The header must seal exactly the file's record lines under a pinned operator
    key (`unsealed`, `bad_seal`, `export_altered`): records removed after export, with or
    without their proofs, fail; an unsealed (older) export passes only with allow_unanchored."""
    keyring, checkpoint_keys, operator_keys = trust.keyring, trust.checkpoint_keys, trust.operator_keys
    witnesses, min_cosignatures, windows = [v for v, _ in trust.witnesses], trust.min_cosignatures, trust.windows or None
    report = VerifyReport(sample=file.selection == "sample")
    for lineno, problem in file.problems:
        report.failures.append(Failure("export", None, "malformed_line", problem,
                                       where=f"line {lineno}" if lineno else "file"))

    def unanchored(origin: str, detail: str) -> None:
        if allow_unanchored:
            report.warnings.append(f"WARN {origin}: unanchored (allowed by --allow-unanchored): {detail}")
        else:
            report.failures.append(Failure(origin, None, "unanchored", detail + " (an export written before "
                                           "checkpoints existed: --allow-unanchored)"))
    notes: dict[str, list[tuple[int, str]]] = {}
    cosigs: dict[str, list[tuple[int, str]]] = {}
    finals: dict[str, list[tuple[int, str]]] = {}
    for cp in file.checkpoints:
        notes.setdefault(cp.origin, []).append((cp.size, cp.note))
        if cp.final is not None:
            finals.setdefault(cp.origin, []).append((cp.size, cp.final))
        cosigs.setdefault(cp.origin, []).extend((cp.size, line) for line in cp.cosignatures)

    def checks(origin: str) -> TreeCheck:
        check = open_checkpoints(origin, notes.get(origin, []), checkpoint_keys, cosigs=cosigs.get(origin, []),
                                 witnesses=witnesses, min_cosignatures=min_cosignatures, windows=windows,
                                 finals=finals.get(origin, []))
        check.pinned = (pins or {}).get(origin)
        return check

    if notes and not checkpoint_keys:
        unanchored("export", "its signed checkpoints cannot be checked without the checkpoint public key: "
                             "give --checkpoint-key or --trust")
    elif not notes:
        unanchored("export", "the export holds no signed checkpoint: the removal of a chain's newest records "
                             "(or of the checkpoint lines) cannot be detected from it")
    counts: dict[str, int] = {}
    for r in file.records:
        counts[r.origin] = counts.get(r.origin, 0) + 1
    sealed = seal_problem(file.header, tuple(operator_keys), counts, file.record_lines.hexdigest())
    if sealed is not None and sealed[0] == "unsealed" and allow_unanchored:
        report.warnings.append(f"WARN export: unsealed (allowed by --allow-unanchored): {sealed[1]}")
    elif sealed is not None:
        report.failures.append(Failure("export", None, *sealed, where="header"))
    use_tree = bool(checkpoint_keys)
    present = {(r.origin, r.seq) for r in file.records}
    for origin, seq in sorted(set(file.proofs) - present):
        report.failures.append(Failure(origin, seq, "orphan_proof", "the export proves this record included, but "
                                       "does not hold it: it was removed from the file"))
    for origin in sorted(set(file.ranges) - {o for o, _ in present}):
        report.failures.append(Failure(origin, file.ranges[origin].first, "orphan_proof", "the export proves a "
                                       "stretch of this chain included, but holds none of its records"))
    for chain in group_by_origin(StoredRecord(r.origin, r.seq, r.payload, r.sig, r.leaf_hash) for r in file.records):
        origin = chain[0].origin
        if notes and origin not in notes:
            unanchored(origin, "no signed checkpoint of this chain in the export")
        ordered, reorders = sort_checking_order(chain)
        tree = checks(origin) if use_tree and origin in notes else None
        if report.sample:
            def proof_of(seq: int, origin: str = origin) -> tuple[int, Sequence[bytes]] | None:
                inc = file.proofs.get((origin, seq))
                return None if inc is None else (inc.size, inc.proof)

            span = file.ranges.get(origin)
            if tree is not None and span is not None:
                tree.span = (span.first, span.last, span.size, span.proof)

            scanned = _check_chain(report, ordered, keyring, tree, proof_of=proof_of, reorders=reorders,
                                   checker=checker)
        else:
            scanned = _check_chain(report, ordered, keyring, tree, reorders=reorders, checker=checker)
        if scanned is not None and tail is not None and use_tree:
            _tail(report, scanned, tree or checks(origin), tail)
    if use_tree and not report.sample:
        _missing_chains(report, notes, checks, tail)
    if not report.sample:
        report.reconcile(start_at_zero=True)
    return report


def verify_slices(slices: Iterable[tuple[str, int, int]], load: Callable[[str, int, int], Iterable[StoredRecord]],
                  keyring: KeyRing, *, whole: bool, reconcile: bool = True, window: tuple[str, str] | None = None,
                  progress: Callable[[str], None] | None = None,
                  checkpoints: Callable[[str], TreeCheck] | None = None,
                  checkpointed: Iterable[str] = (), checker: Checker | None = None,
                  tail: tuple[int, int] | None = None,
                  numbering: Callable[[VerifyReport, bool, list[tuple[str, int, int]]], None] | None = None
                  ) -> VerifyReport:
    """Verify chain slices (origin, first, last) loaded by `load`, typed columns included.

    whole=True checks each chain from seq 0; otherwise the record before each slice is loaded
    as its anchor so the link into the slice is checked too. reconcile=False skips the
    emitter check (right when only some chains are verified: emitters span partitions);
    `window` (RFC 3339 since, until) limits it to events of a time range.

    With `checkpoints`: whole chains are held to their signed checkpoints (pipeline/verify/tree.py),
    and every origin in `checkpointed` (the chains that have checkpoints) must have records; with
    `tail` (end of window, max age) every chain's newest signed time must be that recent.

    With `numbering`, the chains are scanned without keeping their events, and numbering(report,
    reconcile, the (origin, first, last) stretches read) checks duplicate events and emitter
    numbering instead (in the store's SQL: memory that does not grow with the store).
    """
    report = VerifyReport()
    loaded: list[tuple[str, int, int]] = []
    for origin, first, last in slices:
        start = 0 if whole else max(0, first - 1)
        loaded.append((origin, start, last))
        tree = checkpoints(origin) if checkpoints is not None else None
        scanned = _check_chain(report, load(origin, start, last), keyring, tree if whole else None, columns=True,
                               segment=start > 0, checker=checker, numbering=numbering is None)
        if scanned is not None and tree is not None and tail is not None:
            _tail(report, scanned, tree, tail)
        if scanned is not None and progress:
            progress(f"{origin}: {scanned.records} records, {len(scanned.failures)} failure(s)")
    if checkpoints is not None and whole:
        _missing_chains(report, checkpointed, checkpoints, tail)
    if numbering is not None:
        numbering(report, reconcile, loaded)
    elif reconcile:
        report.reconcile(start_at_zero=whole, window=window)
    return report


def verify_sample(origins: Iterable[str], load: Callable[[str], Iterable[StoredRecord]], keyring: KeyRing, *,
                  checkpoints: Callable[[str], TreeCheck] | None, prover: Callable[[str, int], ProofOf],
                  progress: Callable[[str], None] | None = None, tail: tuple[int, int] | None = None) -> VerifyReport:
    """Verify the records a filter selected (typed columns included), each chain's records proven
    included in its newest signed checkpoint by `prover(origin, size)`; nothing left out is a failure."""
    report = VerifyReport(sample=True)
    for origin in origins:
        tree = checkpoints(origin) if checkpoints is not None else None
        if tree is not None and not tree.roots:
            report.failures.extend(tree.failures)
            tree = None
        proof_of = prover(origin, tree.newest) if tree is not None else (lambda seq: None)
        records = list(load(origin))  # read whole first: proofs query the store, which cannot interleave a stream
        scanned = _check_chain(report, records, keyring, tree, columns=True, proof_of=proof_of)
        if scanned is not None and tree is not None and tail is not None:
            _tail(report, scanned, tree, tail)
        if scanned is not None and progress:
            progress(f"{origin}: {scanned.records} sampled records, {len(scanned.failures)} failure(s)")
    return report
