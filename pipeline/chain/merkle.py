"""RFC 6962 / RFC 9162 Merkle trees over a chain's records (pure).

    leaf      = the record's leaf_hash: SHA-256(0x00 || payload || sig)  (RFC 6962 §2.1 leaf input)
    node      = SHA-256(0x01 || left || right)
    MTH(D[n]) : split at k, the largest power of two below n (RFC 9162 §2.1.1)

`CompactRange` keeps a growing tree as the O(log n) roots of its perfect subtrees (the tree's
right edge), so a worker extends it record by record and restores it from a few hashes.
Proofs are RFC 9162 §2.1.3 (inclusion, PATH) and §2.1.4 (consistency, PROOF), and a range proof
for a run of consecutive leaves (not in the RFC: the roots of the subtrees, by the RFC's split,
that lie wholly outside the run; at most 2 log2(size) hashes for any run); they take a
`subtree(start, end)` callback for the hash of any range of leaves, so they can be served
from stored hashes (see TILE_HEIGHT) without reading a whole chain. Verification follows
the RFC's algorithms step by step and raises ProofError naming what does not hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) (RFC 9162 §2.1.1)
TILE_HEIGHT = 8  # stored interior nodes: levels 8, 16, 24 ... (C2SP tlog-tiles' tile height)

Subtree = Callable[[int, int], bytes]  # (start, end) -> MTH(D[start:end]), 0 <= start < end


class ProofError(ValueError):
    """A proof, root or size that does not verify; the message says which step failed."""


def hash_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """k: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH of leaf hashes (already hashed: the records' leaf_hash)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return hash_children(root_of(leaves[:k]), root_of(leaves[k:]))


@dataclass
class CompactRange:
    """The perfect-subtree roots of a tree of `size` leaves, largest (leftmost) first.

    hashes[i] is the root of a perfect subtree of 2^level leaves, one per set bit of `size`.
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 0 or bin(self.size).count("1") != len(self.hashes):
            raise ValueError(f"a compact range of size {self.size} holds {bin(max(self.size, 0)).count('1')} "
                             f"hashes, not {len(self.hashes)}")
        if any(len(h) != HASH_SIZE for h in self.hashes):
            raise ValueError("compact range hashes must be 32 bytes")

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf; returns the perfect subtrees completed by it as (level, index, hash), level >= 1."""
        completed = []
        h, level, index = leaf, 0, self.size
        self.size += 1
        # Merge while the new subtree has a left sibling of the same size (RFC 6962's right edge).
        while index & 1:
            h = hash_children(self.hashes.pop(), h)
            level, index = level + 1, index >> 1
            completed.append((level, index, h))
        self.hashes.append(h)
        return completed

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = hash_children(left, h)
        return h

    def copy(self) -> "CompactRange":
        return CompactRange(self.size, list(self.hashes))


def _check_size(index: int, size: int) -> None:
    if size < 0 or index < 0:
        raise ProofError("sizes and indices are never negative")
    if index >= size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")


def inclusion_proof(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 §2.1.3.1): the audit path of one leaf."""
    _check_size(index, size)
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index - start < k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start += k
    path.reverse()  # the recursion emits the deepest sibling first
    return path


def consistency_proof(old_size: int, size: int, subtree: Subtree) -> list[bytes]:
    """PROOF(old_size, D[size]) (RFC 9162 §2.1.4.1); empty when old_size is 0 or equals size."""
    if not 0 <= old_size <= size:
        raise ProofError(f"old size {old_size} is not between 0 and the tree size {size}")
    if old_size == 0 or old_size == size:
        return []
    out: list[bytes] = []
    m, start, end, whole = old_size, 0, size, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            out.append(subtree(start + k, end))
            end = start + k
        else:
            out.append(subtree(start, start + k))
            m -= k
            start += k
            whole = False
    if not whole:
        out.append(subtree(start, end))
    out.reverse()
    return out


def range_proof(first: int, end: int, size: int, subtree: Subtree) -> list[bytes]:
    """The hashes that, with the leaves [first, end), give the root of the tree of `size` leaves:
    MTH of each subtree (RFC 9162's split) lying wholly outside the run, left to right."""
    if not 0 <= first < end <= size:
        raise ProofError(f"the run [{first}, {end}) is not a non-empty run of a tree of size {size}")
    out: list[bytes] = []

    def walk(lo: int, hi: int) -> None:
        if hi <= first or lo >= end:
            out.append(subtree(lo, hi))
        elif not (first <= lo and hi <= end):
            k = split_point(hi - lo)
            walk(lo, lo + k)
            walk(lo + k, hi)

    walk(0, size)
    return out


def root_from_range(first: int, leaves: Sequence[bytes], size: int, proof: Sequence[bytes]) -> bytes:
    """The root that the run of leaf hashes starting at `first` and its range proof imply. Raises
    ProofError when the proof has too few or too many hashes, or a hash is not 32 bytes."""
    end = first + len(leaves)
    if not 0 <= first < end <= size:
        raise ProofError(f"the run [{first}, {end}) is not a non-empty run of a tree of size {size}")
    for i, h in enumerate(proof):
        _check_hash(f"proof[{i}]", h)
    for i, h in enumerate(leaves):
        _check_hash(f"leaf {first + i}", h)
    used = 0

    def walk(lo: int, hi: int) -> bytes:
        nonlocal used
        if hi <= first or lo >= end:
            if used == len(proof):
                raise ProofError(f"range proof has {len(proof)} hashes, fewer than the run [{first}, {end}) of "
                                 f"size {size} needs")
            used += 1
            return proof[used - 1]
        if first <= lo and hi <= end:
            return root_of(leaves[lo - first:hi - first])
        k = split_point(hi - lo)
        return hash_children(walk(lo, lo + k), walk(lo + k, hi))

    root = walk(0, size)
    if used != len(proof):
        raise ProofError(f"range proof has {len(proof)} hashes, more than the run [{first}, {end}) of size {size} needs")
    return root


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof implies (RFC 9162 §2.1.3.2 steps 1-4). Raises ProofError."""
    _check_size(index, size)
    _check_hash("leaf hash", leaf)
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
        if sn == 0:
            raise ProofError(f"proof has {len(proof)} hashes, more than the path of leaf {index} in size {size}")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = hash_children(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} hashes, fewer than the path of leaf {index} in size {size}")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raises ProofError unless `proof` shows leaf `index` in the tree of `size` with `root`."""
    _check_hash("root", root)
    got = root_from_inclusion(index, size, leaf, proof)
    if got != root:
        raise ProofError(f"inclusion proof of leaf {index} leads to root {got.hex()[:16]}…, not {root.hex()[:16]}…")


def verify_consistency(old_size: int, size: int, old_root: bytes, root: bytes, proof: Sequence[bytes]) -> None:
    """Raises ProofError unless `proof` shows the tree of `old_size` is a prefix of the tree of `size`
    (RFC 9162 §2.1.4.2)."""
    _check_hash("old root", old_root)
    _check_hash("root", root)
    if not 0 <= old_size <= size:
        raise ProofError(f"old size {old_size} is not between 0 and the new size {size}")
    if old_size == size:
        if proof:
            raise ProofError("equal sizes take an empty proof")
        if old_root != root:
            raise ProofError(f"two different roots for size {size}")
        return
    if old_size == 0:
        if proof:
            raise ProofError("from an empty tree the proof is empty")
        return
    if not proof:
        raise ProofError("a consistency proof between different sizes cannot be empty")
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"proof has {len(proof)} hashes, more than a proof from {old_size} to {size}")
        if fn & 1 or fn == sn:
            fr, sr = hash_children(c, fr), hash_children(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = hash_children(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} hashes, fewer than a proof from {old_size} to {size}")
    if fr != old_root:
        raise ProofError(f"proof leads to old root {fr.hex()[:16]}…, not {old_root.hex()[:16]}…")
    if sr != root:
        raise ProofError(f"proof leads to new root {sr.hex()[:16]}…, not {root.hex()[:16]}…")
