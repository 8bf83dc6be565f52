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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.chain.merkle import CompactRange
from pipeline.chain.note import SIG_ED25519, NoteError, Verifier, open_checkpoint
from pipeline.errors import Failure
from pipeline.verify.rules import StoredRecord


@dataclass
class TreeCheck:
    origin: str
    roots: dict[int, bytes]  # checkpoint size -> signed root, for the notes that verified
    witnessed: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # size -> (root, witness) cosigned
    failures: list[Failure] = field(default_factory=list)
    tree: CompactRange = field(default_factory=CompactRange)
    checked: int = 0  # checkpoints whose root was recomputed and matched

    @property
    def newest(self) -> int:
        return max(self.roots, default=0)

    def feed(self, records: Iterable[StoredRecord]) -> Iterator[StoredRecord]:
        """Pass the records on unchanged, growing the tree from the contiguous leaves as they go by."""
        for rec in records:
            if rec.seq == self.tree.size:  # duplicates and records after a gap do not extend the tree
                try:
                    leaf = bytes.fromhex(rec.leaf_hash)
                except ValueError:
                    leaf = b""
                if len(leaf) != 32:
                    leaf = b"\x00" * 32  # the record's own check reports the hash; the root will not match
                self.tree.append(leaf)
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

    def finish(self) -> int:
        """Check the tail after all records went by; returns how many records follow the newest checkpoint."""
        newest = max(self.newest, max(self.witnessed, default=0))
        if self.tree.size < newest:
            what = "no records" if self.tree.size == 0 else f"seq {self.tree.size}..{newest - 1} missing"
            self.failures.append(Failure(self.origin, self.tree.size, "truncated",
                                         f"the checkpoint at size {newest} covers {newest} records: {what}"))
        return max(0, self.tree.size - newest)


def open_checkpoints(origin: str, rows: Iterable[tuple[int, str]], checkpoint_key: bytes) -> TreeCheck:
    """The chain's verified checkpoint roots; each note that does not verify is a located failure."""
    check = TreeCheck(origin, {})
    verifier = Verifier(origin, SIG_ED25519, checkpoint_key)
    for size, note in rows:
        try:
            cp = open_checkpoint(note, verifier)
            if cp.size != size:
                raise NoteError(f"stored at size {size}, the note says {cp.size}")
        except (NoteError, ValueError) as exc:
            check.failures.append(Failure(origin, None, "bad_checkpoint", f"checkpoint at size {size}: {exc}"[:300]))
            continue
        check.roots[cp.size] = cp.root
    return check
