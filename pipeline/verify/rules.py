"""Chain verification rules (pure): everything an auditor with the records and the JWKS checks.

For each chain, in order: every payload is canonical JCS of a v1 record (an AI request) or a v2
record (any other kind, chain/record_v2.py: its kind in the signature's domain tag) whose origin and seq
match where it is stored; its kid is in the JWKS and its Ed25519 signature is valid; its
stored leaf hash is SHA-256(0x00 || payload || sig); its `prev` is the previous record's leaf
hash (64 zeros at seq 0); seqs are contiguous from 0; the same seq twice with the same hash is
a benign duplicate, with another hash a fork; typed columns equal what the payload says; with an emitter key set, each event carries a
valid signature by a key registered for its emitter (pipeline/contract/signature.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiaudit.pipeline.chain import record_v2
from aiaudit.pipeline.chain.formats import kind_of, parse_stored, signing_input
from aiaudit.pipeline.chain.kinds import REQUEST
from aiaudit.pipeline.chain.record import GENESIS_PREV, leaf_hash
from aiaudit.pipeline.contract.analysts import SIGNED_KINDS, signed_message_problem
from aiaudit.pipeline.errors import ChainBroken, Failure, NotCanonicalizable
from aiaudit.pipeline.jcs import MAX_SAFE_INTEGER, is_canonical
from aiaudit.pipeline.keys import KeyRing

REASONS = (
    "malformed_payload",  # not JSON, not a v1 record object
    "not_canonical",  # JSON, but not the JCS bytes of itself
    "column_mismatch",  # origin/seq/typed column differs from the payload
    "unknown_key",  # kid not in the JWKS
    "bad_signature",  # Ed25519 signature does not verify
    "hash_mismatch",  # stored leaf hash is not SHA-256(0x00 || payload || sig)
    "broken_link",  # prev is not the previous record's leaf hash
    "gap",  # a seq is missing
    "fork",  # the same seq with two different records
    "reorder",  # records appear out of seq order
    "duplicate_event",  # one event_id chained twice
    "emitter_gap",  # an emitter numbered an event the chains lack
    "emitter_seq_reused",  # two different events carry one emitter's same number (a restart from 0)
    "bad_checkpoint",  # a checkpoint note that does not verify under the pinned checkpoint key
    "root_mismatch",  # the stored records' Merkle root differs from a signed checkpoint's
    "truncated",  # records a signed checkpoint covers are missing (or the whole chain is)
    "witness_mismatch",  # the records' root differs from what an independent witness cosigned
    "key_out_of_window",  # signed by a pinned key outside the validity window the trust file gives it
    "unwitnessed",  # fewer pinned witnesses cosigned the chain than the trust file requires
    "not_included",  # a sampled record's inclusion proof is missing or does not lead to the signed root
    "stale",  # the chain's newest signed time is older than the allowed age at the end of the window
    "unauthenticated_emitter",  # the event's emitter signature is missing (where required), unknown or invalid
    "unanchored",  # an export (or a chain in it) with no signed checkpoint: removals from its end cannot be seen
    "malformed_line",  # an export line that is not a header, record, checkpoint or proof of the format
    "orphan_proof",  # an export holds an inclusion proof for a record it lacks: the record was removed
    "unsealed",  # an export whose header no pinned operator key sealed (older than version 3, or no key given)
    "bad_seal",  # the export header's seal does not verify, or its key is not pinned
    "export_altered",  # record lines removed, added or changed after the export was sealed
    "tree_state_mismatch",  # a stored tree state (root, compact range) or subtree tile is not the records'
    "inconsistent_with_state",  # not consistent with what a previous run verified (verify --state)
    "after_final",  # records past the chain's signed final checkpoint: a closed chain was written to
    "row_not_chained",  # a row of a table read by people (alerts ...) that no chained record makes: edited or forged
    "row_missing",  # a chained record whose row in the table read by people is gone
    "unauthenticated_analyst",  # a chained status change no key of the analyst it names signed
    "unauthenticated_reader",  # a chained access record no key of the analyst key set signed for its reader
    "unauthenticated_eraser",  # a chained erasure record no key of the analyst key set signed for who erased
)


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored: the exact signed bytes, and optionally its typed columns."""

    origin: str
    seq: int
    payload: bytes
    sig: bytes
    leaf_hash: str
    columns: dict[str, Any] | None = None


@dataclass
class ChainReport:
    origin: str
    kind: str = ""  # what its records are evidence of (chain/kinds.py), "" when none could be read
    records: int = 0
    duplicates: int = 0
    kids: set[str] = field(default_factory=set)
    first_ts: str | None = None
    last_ts: str | None = None
    events: list[tuple[str, int, str, str]] = field(default_factory=list)  # (emitter_id, emitter_seq, event_id, ts)
    failures: list[Failure] = field(default_factory=list)


ColumnsOf = Callable[[dict[str, Any]], dict[str, Any]]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_SAFE_INTEGER


def shape_problem(obj: dict[str, Any]) -> str | None:
    """What is wrong with the types of a parsed payload (v1 or v2), or None. Whatever a stored row
    holds, the checks after this one only meet the types they expect (the verifier never crashes)."""
    if type(obj["origin"]) is not str or not obj["origin"]:
        return "origin is not a non-empty string"
    if not _is_count(obj["seq"]):
        return f"seq {str(obj['seq'])[:40]!r} is not an integer 0..2^53-1"
    if type(obj["prev"]) is not str or not _HEX64.fullmatch(obj["prev"]):
        return "prev is not 64 lowercase hex digits"
    if type(obj["ts"]) is not str or type(obj["kid"]) is not str:
        return "ts or kid is not a string"
    src = obj["src"]
    if type(src) is not dict or type(src.get("topic")) is not str or not _is_count(src.get("partition")) \
            or not _is_count(src.get("offset")):
        return "src is not {topic, partition, offset}"
    event = obj["event"]
    if obj["v"] == record_v2.RECORD_VERSION:
        try:
            record_v2.Message.from_event(event)
        except ValueError as exc:
            return f"event is not a message: {exc}"
        return None
    if type(event) is not dict:
        return "event is not an object"
    for name in ("event_id", "emitter_id"):
        if type(event.get(name)) is not str or not event.get(name):
            return f"event.{name} is missing or not a string"
    if not _is_count(event.get("emitter_seq")):
        return f"event.emitter_seq {str(event.get('emitter_seq'))[:40]!r} is not an integer 0..2^53-1"
    return None


def _check_one(rec: StoredRecord, keyring: KeyRing, columns_of: ColumnsOf | None) -> tuple[list[tuple[str, str]], dict[str, Any] | None]:
    """Checks that need only the record itself. Returns (failures, parsed payload or None)."""
    problems: list[tuple[str, str]] = []
    computed = leaf_hash(rec.payload, rec.sig)
    if computed != rec.leaf_hash:
        problems.append(("hash_mismatch", f"stored leaf hash {rec.leaf_hash[:16]}…, computed {computed[:16]}…"))
    try:
        obj = parse_stored(rec.payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return [*problems, ("malformed_payload", str(exc)[:200])], None
    shape = shape_problem(obj)
    if shape is not None:
        return [*problems, ("malformed_payload", shape)], None
    try:
        if not is_canonical(obj, rec.payload):
            problems.append(("not_canonical", "payload bytes are not the RFC 8785 form of their JSON"))
    except NotCanonicalizable as exc:
        problems.append(("not_canonical", str(exc)))
    if obj["origin"] != rec.origin or obj["seq"] != rec.seq:
        problems.append(("column_mismatch", f"stored at {rec.origin} seq {rec.seq}, payload says {obj['origin']} seq {obj['seq']}"))
    kid = obj["kid"]
    if kid not in keyring:
        problems.append(("unknown_key", f"kid {kid} is not in the JWKS"))
    elif not keyring.verify(kid, rec.sig, signing_input(obj, rec.payload)):
        problems.append(("bad_signature", f"Ed25519 signature by {kid} does not verify"))
    elif not keyring.valid_at(kid, obj["ts"]):
        problems.append(("key_out_of_window", f"key {kid} was not valid at {obj['ts']} (trust file)"))
    if keyring.analysts is not None and obj["v"] == record_v2.RECORD_VERSION and obj["kind"] in SIGNED_KINDS:
        # Whoever holds the record key alone cannot make a status change an analyst did not sign, nor
        # an access record no reader's key signed.
        message = record_v2.Message.from_event(obj["event"])  # shape_problem checked it
        problem = signed_message_problem(obj["kind"], message.value, keyring.analysts, at=obj["ts"])
        if problem is not None:
            problems.append((SIGNED_KINDS[obj["kind"]].refusal, problem))
    if keyring.emitters is not None and obj["v"] != record_v2.RECORD_VERSION:
        # Whoever holds the record key alone cannot make an event an emitter did not sign.
        problem = keyring.emitters.problem(obj["event"])
        if problem is not None:
            problems.append(("unauthenticated_emitter", problem))
    if rec.columns is not None and columns_of is not None:
        try:
            expected = columns_of(obj)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            return [*problems, ("malformed_payload", f"event lacks what its columns need: {type(exc).__name__} {exc}"[:200])], obj
        if rec.columns == expected:  # the usual case, compared in one step
            return problems, obj
        for name, value in rec.columns.items():
            if name in expected and expected[name] != value:
                problems.append(("column_mismatch", f"column {name} = {value!r}, payload says {expected[name]!r}"))
    return problems, obj


def verify_chain(
    records: Iterable[StoredRecord],
    keyring: KeyRing,
    *,
    columns_of: ColumnsOf | None = None,
    allow_empty: bool = False,
    segment: bool = False,
) -> ChainReport:
    """Verify one chain's records, given in stored order. Returns the report when it holds.

    Raises ChainBroken naming every failure (chain, seq, reason). An empty input raises
    unless allow_empty. Records of more than one origin raise ValueError.
    """
    report = _scan(records, keyring, columns_of, segment=segment)
    if report is None:
        if allow_empty:
            return ChainReport(origin="")
        raise ChainBroken([Failure("", None, "gap", "no records to verify")])
    if report.failures:
        raise ChainBroken(report.failures)
    return report


# What the chain scan needs of one record's own checks: its problems, and (when its payload has
# a record's shape) prev, kid, ts, event_id, emitter_id, emitter_seq, kind (v2 records: no event id
# or emitter, "" and -1). Small and picklable, so the per-record checks (the costly part: JSON,
# JCS, Ed25519, SHA-256) can run in other processes.
Summary = tuple[str, str, str, str, str, int, str]
Checked = tuple[list[tuple[str, str]], "Summary | None"]
Checker = Callable[[Iterable[StoredRecord]], Iterator[tuple[StoredRecord, Checked]]]


def check_record(rec: StoredRecord, keyring: KeyRing, columns_of: ColumnsOf | None) -> Checked:
    """Every check of one record on its own (see _check_one), reduced to what the scan needs."""
    problems, obj = _check_one(rec, keyring, columns_of)
    if obj is None:
        return problems, None
    kind = kind_of(obj)
    if kind != REQUEST:
        return problems, (obj["prev"], obj["kid"], obj["ts"], "", "", -1, kind)
    ev = obj["event"]
    return problems, (obj["prev"], obj["kid"], obj["ts"], ev["event_id"], ev["emitter_id"], ev["emitter_seq"], kind)


def checked_inline(keyring: KeyRing, columns_of: ColumnsOf | None) -> Checker:
    """The default checker: each record checked here, as it goes by."""
    def run(records: Iterable[StoredRecord]) -> Iterator[tuple[StoredRecord, Checked]]:
        for rec in records:
            yield rec, check_record(rec, keyring, columns_of)
    return run


def _scan(records: Iterable[StoredRecord], keyring: KeyRing, columns_of: ColumnsOf | None, *, segment: bool = False,
          sample: bool = False, checker: Checker | None = None, numbering: bool = True) -> ChainReport | None:
    """Scan one chain in seq order. With segment=True the input is a slice that need not start at
    seq 0: the first record anchors the slice (its own checks apply, its prev link is not checked).
    With sample=True the input is a selection of the chain's records: seqs it leaves out are not
    gaps, and a record's prev link is checked only when the record before it was selected too.
    With numbering=False the scan keeps nothing per record (no event ids, no emitter numbers): the
    caller checks duplicates and emitter numbering another way (in the store's SQL, for a store
    too large to hold every event in memory: pipeline/verify/sources.py)."""
    report: ChainReport | None = None
    prev: StoredRecord | None = None  # the record at expected_seq - 1
    expected_seq = 0
    last_seen_seq = -1
    event_ids: dict[str, int] = {}

    def fail(seq: int | None, reason: str, detail: str) -> None:
        assert report is not None
        report.failures.append(Failure(report.origin, seq, reason, detail))

    for rec, (problems, obj) in (checker or checked_inline(keyring, columns_of))(records):
        if report is None:
            report = ChainReport(origin=rec.origin)
            if segment:
                expected_seq = rec.seq
        elif rec.origin != report.origin:
            raise ValueError(f"verify_chain got records of {report.origin} and {rec.origin}")
        if rec.seq < last_seen_seq:
            fail(rec.seq, "reorder", f"seq {rec.seq} stored after seq {last_seen_seq}")
        last_seen_seq = max(last_seen_seq, rec.seq)

        if prev is not None and rec.seq == prev.seq:
            # A second record at the seq just checked: an exact replay is benign, else a fork.
            if (rec.payload, rec.sig, rec.leaf_hash) == (prev.payload, prev.sig, prev.leaf_hash):
                report.duplicates += 1
                for reason, detail in problems:
                    fail(rec.seq, reason, detail)
            else:
                fail(rec.seq, "fork", f"two records at seq {rec.seq}: leaf {prev.leaf_hash[:16]}… and {rec.leaf_hash[:16]}…")
            continue

        for reason, detail in problems:
            fail(rec.seq, reason, detail)
        skipped = rec.seq > expected_seq
        if skipped and not sample:
            fail(expected_seq, "gap", f"seq {expected_seq}..{rec.seq - 1} missing")
        elif rec.seq < expected_seq:
            # Already past this seq (the reorder was reported above): check it stands alone.
            continue
        if obj is not None:
            rec_prev, kid, ts, event_id, emitter_id, emitter_seq, kind = obj  # shape_problem checked every type
            report.kind = report.kind or kind
            want_prev = GENESIS_PREV if rec.seq == 0 else (prev.leaf_hash if prev is not None else None)
            if (segment and prev is None and rec.seq != 0) or (sample and skipped and rec.seq != 0):
                want_prev = None  # the anchor of a slice, or a sampled record: its predecessor was not loaded
            if rec.seq == expected_seq and want_prev is not None and rec_prev != want_prev:
                fail(rec.seq, "broken_link", f"prev {rec_prev[:16]}… is not seq {rec.seq - 1}'s leaf hash {want_prev[:16]}…")
            report.kids.add(kid)
            report.first_ts = report.first_ts or ts
            report.last_ts = ts
            if kind == REQUEST and numbering:  # other kinds chain messages, which have no event id or emitter numbering
                if event_id in event_ids:
                    fail(rec.seq, "duplicate_event", f"event {event_id} already chained at seq {event_ids[event_id]}")
                event_ids[event_id] = rec.seq
                report.events.append((emitter_id, emitter_seq, event_id, ts))
        report.records += 1
        prev = rec
        expected_seq = rec.seq + 1
    return report


def scan_chain(records: Iterable[StoredRecord], keyring: KeyRing, *, columns_of: ColumnsOf | None = None,
               segment: bool = False, sample: bool = False, checker: Checker | None = None,
               numbering: bool = True) -> ChainReport | None:
    """Like verify_chain, but returns the report with its failures instead of raising (for reporting
    tools). `checker` runs the per-record checks (default: inline; pipeline/verify/pool.py: in parallel)."""
    return _scan(records, keyring, columns_of, segment=segment, sample=sample, checker=checker, numbering=numbering)


def group_by_origin(records: Iterable[StoredRecord]) -> Iterator[list[StoredRecord]]:
    """Split a stream into per-chain lists, keeping each chain's stored order."""
    chains: dict[str, list[StoredRecord]] = {}
    for rec in records:
        chains.setdefault(rec.origin, []).append(rec)
    yield from chains.values()


def sort_checking_order(records: list[StoredRecord]) -> tuple[list[StoredRecord], list[Failure]]:
    """For records read from a file: report each one stored before a lower seq, then sort by seq.

    Sorting is stable, so exact duplicates and forks stay adjacent for the scan.
    """
    failures: list[Failure] = []
    highest = -1
    for rec in records:
        if rec.seq < highest:
            failures.append(Failure(rec.origin, rec.seq, "reorder", f"seq {rec.seq} stored after seq {highest}"))
        highest = max(highest, rec.seq)
    return sorted(records, key=lambda r: r.seq), failures
