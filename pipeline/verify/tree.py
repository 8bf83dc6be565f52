"""Checkpoints against the records (pure): nothing removed from the end of a chain unnoticed.

For one chain, given its signed checkpoints and its stored records in seq order:
- every checkpoint note must verify under the pinned checkpoint key, be named by the chain's
  origin and state a 32-byte root (else `bad_checkpoint`);
- the root recomputed from the stored leaf hashes at each checkpoint size must equal the signed
  root (else `root_mismatch`: a record was rewritten, even re-signed with the record key);
- records a checkpoint covers that are not stored are `truncated`, with the seq range; a chain
  with checkpoints and no records at all is `truncated` too;
- records after the newest checkpoint are not a failure: they are counted, and reported as not
  yet checkpointed (the chain worker signs within its checkpoint interval);
- with a witness's view (`witnessed`, from `verify --witness`): the stored records must give the
  root the witness cosigned at its size (else `witness_mismatch`: history was rewritten and its
  checkpoints re-issued, which no check of the store alone can see), and must reach that size.

For a sample (a filtered selection of a chain's records, `feed_sample`): each selected record
that a signed checkpoint covers needs an RFC 9162 inclusion proof from its own leaf hash to that
checkpoint's root (else `not_included`); records after the newest checkpoint are counted as not
yet provable. The records a filter left out are not needed, and not reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiaudit.pipeline.chain.checkpoint import FINAL_TAG
from aiaudit.pipeline.chain.merkle import TILE_HEIGHT, CompactRange, ProofError, root_from_range, verify_inclusion
from aiaudit.pipeline.chain.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Checkpoint,
    NoteError,
    Verifier,
    add_signatures,
    cosignatures,
    open_note,
    signature_line,
)
from aiaudit.pipeline.chain.record import leaf_hash
from aiaudit.pipeline.errors import Failure
from aiaudit.pipeline.verify.rules import StoredRecord

MAX_HOLES = 20  # ranges named in one truncated line; the gap rule names each one anyway


@dataclass
class TreeCheck:
    origin: str
    roots: dict[int, bytes]  # checkpoint size -> signed root, for the notes that verified
    witnessed: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # size -> (root, witness) cosigned
    cosigned: dict[int, set[str]] = field(default_factory=dict)  # size -> pinned witnesses whose stored cosignature verifies
    min_cosignatures: int = 0
    failures: list[Failure] = field(default_factory=list)
    tree: CompactRange = field(default_factory=CompactRange)
    checked: int = 0  # checkpoints whose root was recomputed and matched
    proven: int = 0  # sampled records whose inclusion proof leads to a signed root
    unproven: int = 0  # sampled records after the newest checkpoint
    signed_time: int | None = None  # newest verified signed time (log timestamp or witness cosignature), unix s
    holes: list[tuple[int, int]] = field(default_factory=list)  # seq ranges the records fed skip (first MAX_HOLES)
    highest: int = -1  # the highest seq fed
    # Stored tree states to hold to the records (whole verification): size -> [(root hex, compact range
    # hexes)], and (level, index) -> the stored hashes of that tile (more than one: an edit or a fork).
    states: dict[int, list[tuple[str, list[str]]]] = field(default_factory=dict)
    tiles: dict[tuple[int, int], set[str]] = field(default_factory=dict)
    states_checked: int = 0
    # The auditor's monitor state: (size, root) of the newest checkpoint a previous run verified.
    pinned: tuple[int, bytes] | None = None
    final: tuple[int, bytes] | None = None  # (size, root) of the chain's signed final checkpoint: it is closed
    # A sample's stretch proven by one range proof (first, last, size, hashes), and its records' leaves.
    span: tuple[int, int, int, Sequence[bytes]] | None = None
    run: dict[int, bytes] = field(default_factory=dict)

    def expect_states(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Stored tree-state rows (size, root, compact_range, tile_levels, tile_indexes, tile_hashes) to
        check as the records go by; a row of any other shape is itself a located failure."""
        for row in rows:
            try:
                size, root, rng, levels, indexes, hashes = row
                self.states.setdefault(int(size), []).append((str(root), [str(h) for h in rng]))
                for level, index, h in zip(levels, indexes, hashes, strict=True):
                    self.tiles.setdefault((int(level), int(index)), set()).add(str(h))
            except (TypeError, ValueError) as exc:
                self.failures.append(Failure(self.origin, None, "tree_state_mismatch",
                                             f"a stored tree state row is malformed: {type(exc).__name__}"))

    def _check_state(self, completed: list[tuple[int, int, bytes]]) -> None:
        """After a leaf: stored tiles it completed, and stored states at the tree's new size."""
        for level, index, h in completed:
            stored = self.tiles.get((level, index))
            if stored is not None and stored != {h.hex()}:
                first = index << level
                self.failures.append(Failure(
                    self.origin, first, "tree_state_mismatch",
                    f"the stored subtree at level {level} index {index} (records {first}..{first + (1 << level) - 1}) "
                    "is not the records' hash: proofs built from it would not verify"))
        if self.pinned is not None and self.tree.size == self.pinned[0] and self.tree.root() != self.pinned[1]:
            self.failures.append(Failure(
                self.origin, self.tree.size - 1, "inconsistent_with_state",
                f"the records' root at size {self.tree.size} is not the one verified before ({self.pinned[1].hex()[:16]}…, "
                "--state): history was rewritten, however well it is signed and cosigned now"))
        for root, rng in self.states.get(self.tree.size, ()):
            self.states_checked += 1
            if root != self.tree.root().hex() or rng != [x.hex() for x in self.tree.hashes]:
                what = "root" if root != self.tree.root().hex() else "compact range"
                self.failures.append(Failure(
                    self.origin, self.tree.size - 1, "tree_state_mismatch",
                    f"the stored tree state at size {self.tree.size}: its {what} is not the records' (edited in "
                    "the store; the chain worker would extend a wrong tree from it)"))

    def tail_rule(self, end_s: int, max_age_s: int) -> None:
        """The newest signed time must lie within max_age_s of the window's end: a logger that stopped,
        or a tail of records and checkpoints removed together, leaves only older signed times. A chain
        closed by a signed final checkpoint is exempt (its end is signed: the records must rebuild
        the final root, like any checkpoint's), and no record may lie past it."""
        if self.final is not None:
            if self.highest + 1 > self.final[0]:
                self.failures.append(Failure(
                    self.origin, self.final[0], "after_final",
                    f"records up to seq {self.highest} past the chain's final checkpoint at size {self.final[0]}: "
                    "a closed chain was written to"))
            return
        if self.signed_time is None:
            self.failures.append(Failure(self.origin, None, "stale", "no signed time (timestamp or cosignature): "
                                         "the chain's freshness cannot be shown"))
        elif end_s - self.signed_time > max_age_s:
            self.failures.append(Failure(
                self.origin, self.newest, "stale",
                f"newest signed time {utc_text(self.signed_time)} is {end_s - self.signed_time}s before {utc_text(end_s)}, "
                f"more than {max_age_s}s: the logger stopped, or its newest records and checkpoints were removed "
                f"(judged --as-of {utc_text(self.signed_time + max_age_s)} or earlier, it passes)"))

    def missing_text(self, size: int) -> str:
        """The exact seqs below `size` that no record fed carries, e.g. 'seq 900, 1200..1203 missing'."""
        if self.highest < 0:
            return "no records"
        spans = [(a, min(b, size - 1)) for a, b in self.holes if a < size]
        if self.highest + 1 < size:
            spans.append((self.highest + 1, size - 1))
        text = ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in spans[:MAX_HOLES])
        more = " and more" if len(self.holes) >= MAX_HOLES else ""
        return f"seq {text}{more} missing" if spans else "records out of order"

    def anchor(self) -> tuple[int, bytes] | None:
        """(size, root) of the newest signed checkpoint the records matched, for the monitor state."""
        matched = [s for s in self.roots if s <= self.tree.size]
        return (max(matched), self.roots[max(matched)]) if matched else None

    @property
    def newest(self) -> int:
        return max(self.roots, default=0)

    def feed(self, records: Iterable[StoredRecord]) -> Iterator[StoredRecord]:
        """Pass the records on unchanged, growing the tree from the contiguous leaves as they go by."""
        for rec in records:
            if rec.seq > self.highest + 1 and len(self.holes) < MAX_HOLES:
                self.holes.append((self.highest + 1, rec.seq - 1))
            self.highest = max(self.highest, rec.seq)
            if rec.seq == self.tree.size:  # duplicates and records after a gap do not extend the tree
                try:
                    leaf = bytes.fromhex(rec.leaf_hash)
                except ValueError:
                    leaf = b""
                if len(leaf) != 32:
                    leaf = b"\x00" * 32  # the record's own check reports the hash; the root will not match
                completed = self.tree.append(leaf)
                if self.states or self.tiles or self.pinned is not None:
                    self._check_state([c for c in completed if c[0] % TILE_HEIGHT == 0])
                seen = self.witnessed.get(self.tree.size)
                if seen is not None and self.tree.root() != seen[0]:
                    self.failures.append(Failure(self.origin, self.tree.size - 1, "witness_mismatch",
                                                 f"witness {seen[1]} cosigned size {self.tree.size} with root "
                                                 f"{seen[0].hex()[:16]}…; the stored records give {self.tree.root().hex()[:16]}…"))
                want = self.roots.get(self.tree.size)
                if want is not None:
                    got = self.tree.root()
                    if got == want:
                        self.checked += 1
                    else:
                        self.failures.append(Failure(self.origin, self.tree.size - 1, "root_mismatch",
                                                     f"records 0..{self.tree.size - 1} have root {got.hex()[:16]}…, "
                                                     f"the checkpoint at size {self.tree.size} signed {want.hex()[:16]}…"))
            yield rec

    def feed_sample(self, records: Iterable[StoredRecord],
                    proof_of: Callable[[int], tuple[int, Sequence[bytes]] | None]) -> Iterator[StoredRecord]:
        """Pass a sample's records on unchanged, checking each one's inclusion proof (size, hashes)
        from `proof_of(seq)` against the signed root at that size; the records of `span` (a range
        proof) are held to it together, in finish_sample. Returns via `finish_sample`."""
        done: set[int] = set()
        for rec in records:
            if rec.seq in done:  # a duplicate or fork: the record's own scan reports it
                yield rec
                continue
            done.add(rec.seq)
            if rec.seq >= self.newest:
                self.unproven += 1
                yield rec
                continue
            if self.span is not None and self.span[0] <= rec.seq <= self.span[1]:
                self.run[rec.seq] = bytes.fromhex(leaf_hash(rec.payload, rec.sig))
                yield rec
                continue
            found = proof_of(rec.seq)
            if found is None:
                self._not_included(rec.seq, f"no inclusion proof, though the checkpoint at size {self.newest} "
                                            "covers it")
            elif found[0] not in self.roots:
                self._not_included(rec.seq, f"proof against size {found[0]}, which no verified checkpoint signs")
            else:
                try:
                    verify_inclusion(rec.seq, found[0], bytes.fromhex(leaf_hash(rec.payload, rec.sig)), found[1],
                                     self.roots[found[0]])
                    self.proven += 1
                except ProofError as exc:
                    self._not_included(rec.seq, str(exc))
            yield rec

    def _not_included(self, seq: int, detail: str) -> None:
        self.failures.append(Failure(self.origin, seq, "not_included", detail[:300]))

    def finish_sample(self) -> int:
        """After a sample went by: its range proof, the cosignature rule; returns how many records no
        checkpoint covers yet."""
        if self.span is not None:
            self._check_range(*self.span)
        self._cosignature_rule()
        return self.unproven

    def _check_range(self, first: int, last: int, size: int, proof: Sequence[bytes]) -> None:
        """The records first..last, each by its own leaf hash, with the range proof must rebuild the
        signed root at `size` (one `not_included` naming the stretch otherwise: every record in it)."""
        # self.run holds the span's seqs only, each once: nothing here walks a range the export claims
        # before a signed size bounds it (a hostile line may claim last = 2^63).
        missing = last - first + 1 - len(self.run)
        if size not in self.roots:
            self._not_included(first, f"range proof of records {first}..{last} against size {size}, which no verified "
                                      "checkpoint signs")
        elif missing:
            gap = next(s for s in range(first, last + 1) if s not in self.run)  # within len(run) + 1 steps
            self._not_included(gap, f"range proof of records {first}..{last}: {missing} of them are not in the "
                                    f"export (first {gap})")
        else:
            try:
                root = root_from_range(first, [self.run[s] for s in range(first, last + 1)], size, proof)
            except ProofError as exc:
                self._not_included(first, f"range proof of records {first}..{last}: {exc}")
                return
            if root == self.roots[size]:
                self.proven += last - first + 1
            else:
                self._not_included(first, f"records {first}..{last} with their range proof lead to root "
                                          f"{root.hex()[:16]}…, not the signed root at size {size}: a record of the "
                                          "stretch is not the one the checkpoint covers")

    def _cosignature_rule(self) -> None:
        if self.min_cosignatures and self.roots:
            enough = [size for size, names in self.cosigned.items() if len(names) >= self.min_cosignatures]
            if not enough:
                self.failures.append(Failure(self.origin, None, "unwitnessed", f"no checkpoint has "
                                             f"{self.min_cosignatures} pinned witness cosignature(s)"))

    def finish(self) -> int:
        """Check the tail after all records went by; returns how many records follow the newest checkpoint."""
        newest = max(self.newest, max(self.witnessed, default=0))
        self._cosignature_rule()
        if self.pinned is not None and max(newest, self.tree.size) < self.pinned[0]:
            self.failures.append(Failure(
                self.origin, None, "inconsistent_with_state",
                f"a previous run verified this chain at size {self.pinned[0]}; now it ends at "
                f"{max(newest, self.tree.size)} (--state): records and checkpoints were removed"))
        if self.tree.size < newest:
            self.failures.append(Failure(self.origin, self.tree.size, "truncated",
                                         f"the checkpoint at size {newest} covers {newest} records: "
                                         f"{self.missing_text(newest)}"))
        return max(0, self.tree.size - newest)


Windows = Mapping[bytes, tuple[int, int]]  # public key -> [not_before, not_after) in unix seconds


def open_checkpoints(origin: str, rows: Iterable[tuple[int, str]], checkpoint_keys: bytes | Sequence[bytes], *,
                     cosigs: Iterable[tuple[int, str]] = (), witnesses: Sequence[Verifier] = (),
                     min_cosignatures: int = 0, windows: Windows | None = None,
                     finals: Iterable[tuple[int, str]] = ()) -> TreeCheck:
    """The chain's verified checkpoint roots; each note that does not verify under one of the pinned
    checkpoint keys is a located failure. `cosigs` (size, cosignature line) are the log's own signed
    times (the checkpoint keys as cosigners) and witness cosignatures; a witness's counts when it is
    pinned and verifies over the signed checkpoint at that size.

    `windows` (from the trust file) bound when a key may sign, judged on signed times: a signed time
    or cosignature outside its key's window does not count (`key_out_of_window`), and a checkpoint
    signed only by keys with windows needs a signed time inside one of them at its size, or its
    root is not trusted (`key_out_of_window`)."""
    windows = windows or {}
    keys = [checkpoint_keys] if isinstance(checkpoint_keys, bytes) else list(checkpoint_keys)
    verifiers = [Verifier(origin, SIG_ED25519, k) for k in keys]
    log_clocks = [Verifier(origin, SIG_COSIGNATURE_V1, k) for k in keys]  # the log's own signed times
    signers = {(v.name, v.key_id): v for v in [*witnesses, *log_clocks]}
    check = TreeCheck(origin, {}, min_cosignatures=min_cosignatures)
    notes: dict[int, str] = {}
    windowed: dict[int, set[bytes]] = {}  # size -> the windowed keys its note was signed by (all had windows)
    in_window: set[int] = set()  # sizes with a signed time inside the window of a key that signed them

    def fail(reason: str, detail: str) -> None:
        check.failures.append(Failure(origin, None, reason, detail[:300]))

    for size, note in rows:
        try:
            text, by = open_note(note, verifiers)
            cp = Checkpoint.parse(text)
            if cp.origin != origin or cp.size != size:
                raise NoteError(f"stored at {origin} size {size}, the note says {cp.origin} size {cp.size}")
        except (NoteError, ValueError) as exc:
            fail("bad_checkpoint", f"checkpoint at size {size}: {exc}")
            continue
        check.roots[cp.size] = cp.root
        notes[cp.size] = note
        if all(v.public_key in windows for v in by):
            windowed[cp.size] = {v.public_key for v in by}
    for size, line in cosigs:
        name, key = _signer(line)
        if size not in notes:
            if name == origin:
                fail("bad_checkpoint", f"a signed time for size {size}, which no verified checkpoint signs")
            continue
        try:
            times = cosignatures(add_signatures(notes[size], [line if line.endswith("\n") else line + "\n"]),
                                 [*witnesses, *log_clocks])
        except NoteError as exc:
            fail("bad_checkpoint", f"cosignature at size {size}: {exc}")
            continue
        signer = signers.get((name, key))
        if signer is None or name not in times:
            if name == origin:
                fail("bad_checkpoint", f"signed time at size {size} is not by a pinned checkpoint key")
            continue  # an unpinned witness: ignored
        ts, window = times[name], windows.get(signer.public_key)
        if window is not None and not window[0] <= ts < window[1]:
            what = "the log's signed time" if name == origin else f"the cosignature of {name}"
            fail("key_out_of_window", f"{what} at size {size} is {utc_text(ts)}, outside its key's window "
                                      f"{utc_text(window[0])}..{utc_text(window[1])} (trust file)")
            continue
        if name == origin and signer.public_key in windowed.get(size, ()):
            in_window.add(size)
        check.signed_time = max(ts, check.signed_time or 0)
        if name != origin:  # the log's own timestamps are not witness cosignatures
            check.cosigned.setdefault(size, set()).add(name)
    for size in sorted(set(windowed) - in_window):
        del check.roots[size]
        fail("key_out_of_window", f"the checkpoint at size {size} is signed only by key(s) with a validity window "
                                  "and has no signed time inside one: its root is not trusted")
    for size, note in finals:  # a chain closed at `size` (an earlier generation's)
        try:
            text, by = open_note(note, verifiers)
            if not text.startswith(FINAL_TAG):
                raise NoteError("not a final checkpoint")
            cp = Checkpoint.parse(text[len(FINAL_TAG):])
            if cp.origin != origin or cp.size != size:
                raise NoteError(f"stored at {origin} size {size}, the final note says {cp.origin} size {cp.size}")
        except (NoteError, ValueError) as exc:
            fail("bad_checkpoint", f"final checkpoint at size {size}: {exc}")
            continue
        if all(v.public_key in windows for v in by):
            fail("key_out_of_window", f"the final checkpoint at size {size} is signed only by key(s) with a validity "
                                      "window and carries no signed time to place it in one: not honoured")
            continue
        if check.roots.get(cp.size, cp.root) != cp.root:
            fail("bad_checkpoint", f"the final checkpoint at size {size} signs another root than the checkpoint there")
            continue
        check.roots[cp.size] = cp.root
        check.final = (cp.size, cp.root)
    return check


def _signer(line: str) -> tuple[str, int]:
    """(name, key id) a cosignature line claims, or ("", -1) when it is not one."""
    try:
        sig = signature_line(line)
    except NoteError:
        return "", -1
    return sig.name, sig.key_id


def utc_text(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
