"""Inclusion and consistency proofs (RFC 9162) from stored hashes, never from a whole chain.

Any subtree hash is built from the perfect subtrees stored at levels 0 (the records' own leaf
hashes), 8, 16, 24 ... (the tiles the chain worker wrote with its tree states): a subtree at
level L is hashed up from at most 2^(L mod 8) stored nodes of the band below it. Nodes are
fetched a whole tile (256 aligned nodes of one level) at a time and cached, so a proof of any
record in a chain of 10 million reads a few tiles per band.

The printed form (`aiaudit proof ...`), every hash in standard base64 as in C2SP checkpoints:

    {"type": "inclusion", "origin", "index", "size", "leaf_hash", "root", "proof": [...],
     "checkpoint": signed note at `size` | null}
    {"type": "consistency", "origin", "old_size", "size", "old_root", "root", "proof": [...],
     "old_checkpoint": note | null, "checkpoint": note | null}
"""

from __future__ import annotations

import base64
from typing import Any

from clickhouse_connect.driver.client import Client

from aiaudit.pipeline import store
from aiaudit.pipeline.chain import merkle
from aiaudit.pipeline.chain.kinds import is_kind_chain
from aiaudit.pipeline.chain.merkle import TILE_HEIGHT
from aiaudit.pipeline.chain.note import Checkpoint, split_note
from aiaudit.pipeline.errors import ConfigError, StoreError
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import checkpoints, evidence, kind_evidence

TILE_WIDTH = 1 << TILE_HEIGHT


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode("ascii")


class StoredHashes:
    """Subtree hashes of one chain from ClickHouse (tiles cached per instance)."""

    def __init__(self, client: Client, settings: Settings, origin: str) -> None:
        self.client = client
        self.db = store.database(settings)
        self.origin = origin
        self.kind_chain = is_kind_chain(settings.kafka, origin)  # its records are in kind_evidence
        self._tiles: dict[tuple[int, int], dict[int, bytes]] = {}
        self.queries = 0

    def _tile(self, level: int, tile: int) -> dict[int, bytes]:
        key = (level, tile)
        if key not in self._tiles:
            first, last = tile * TILE_WIDTH, tile * TILE_WIDTH + TILE_WIDTH - 1
            if level == 0:
                table = kind_evidence if self.kind_chain else evidence
                sql, params = table.select_leaf_hashes(self.db, self.origin, first, last)
            else:
                sql, params = checkpoints.select_tiles(self.db, self.origin, level, first, last)
            _, rows = store.query_rows(self.client, sql, params)
            self.queries += 1
            try:
                self._tiles[key] = {int(i): bytes.fromhex(h) for i, h in rows}
            except (TypeError, ValueError) as exc:  # a stored row someone edited: say where, do not crash
                raise StoreError(f"{self.origin}: a stored hash at level {level} is not hex ({exc}); "
                                 "run `aiaudit verify`") from exc
        return self._tiles[key]

    def node(self, level: int, index: int) -> bytes:
        """The root of the perfect subtree of 2^level leaves starting at leaf index << level."""
        base = level - level % TILE_HEIGHT
        if base == level:
            found = self._tile(level, index >> TILE_HEIGHT).get(index)
            if found is not None:
                return found
            if level == 0:
                raise StoreError(f"{self.origin}: record {index} is not stored; run `aiaudit verify`")
            # A tile the chain worker did not write (a chain older than tree states): from the band below.
            base = level - TILE_HEIGHT
        span = 1 << (level - base)
        nodes = [self.node(base, index * span + i) for i in range(span)]
        while len(nodes) > 1:
            nodes = [merkle.hash_children(nodes[i], nodes[i + 1]) for i in range(0, len(nodes), 2)]
        return nodes[0]

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) from stored perfect subtrees (RFC 9162's split)."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self.node(n.bit_length() - 1, start // n)
        k = merkle.split_point(n)
        return merkle.hash_children(self.subtree(start, start + k), self.subtree(start + k, end))


def _signed(client: Client, settings: Settings, origin: str) -> dict[int, str]:
    _, rows = store.query_rows(client, *checkpoints.select_notes(store.database(settings), origin))
    return {int(size): str(note) for size, note in rows}


def _size(notes: dict[int, str], size: int | None, origin: str) -> int:
    if size is not None:
        return size
    if not notes:
        raise ConfigError(f"{origin} has no signed checkpoint yet; give --size")
    return max(notes)


def _root(hashes: StoredHashes, notes: dict[int, str], size: int) -> bytes:
    """The root at `size`: the signed one when a checkpoint exists (and it must match the records)."""
    computed = hashes.subtree(0, size) if size else merkle.EMPTY_ROOT
    if size in notes:
        signed = Checkpoint.parse(split_note(notes[size])[0]).root
        if signed != computed:
            raise StoreError(f"{hashes.origin}: the stored records' root at size {size} is not the signed one; "
                             "run `aiaudit verify`")
    return computed


def inclusion(client: Client, settings: Settings, origin: str, index: int, size: int | None = None) -> dict[str, Any]:
    """A proof that record `index` is in the chain at `size` (default: the newest signed checkpoint).
    Raises ConfigError for an index or size out of range, StoreError when hashes are missing."""
    notes = _signed(client, settings, origin)
    size = _size(notes, size, origin)
    if not 0 <= index < size:
        raise ConfigError(f"seq {index} is not in {origin} at size {size}")
    hashes = StoredHashes(client, settings, origin)
    leaf = hashes.node(0, index)
    proof = merkle.inclusion_proof(index, size, hashes.subtree)
    root = _root(hashes, notes, size)
    merkle.verify_inclusion(index, size, leaf, proof, root)  # never print a proof that does not verify
    return {"type": "inclusion", "origin": origin, "index": index, "size": size, "leaf_hash": _b64(leaf),
            "root": _b64(root), "proof": [_b64(h) for h in proof], "checkpoint": notes.get(size)}


def consistency(client: Client, settings: Settings, origin: str, old_size: int, size: int | None = None) -> dict[str, Any]:
    """A proof that the chain at `old_size` is a prefix of the chain at `size` (default: newest signed)."""
    notes = _signed(client, settings, origin)
    size = _size(notes, size, origin)
    if not 0 <= old_size <= size:
        raise ConfigError(f"--from {old_size} must be between 0 and --to {size}")
    hashes = StoredHashes(client, settings, origin)
    proof = merkle.consistency_proof(old_size, size, hashes.subtree)
    old_root, root = _root(hashes, notes, old_size), _root(hashes, notes, size)
    merkle.verify_consistency(old_size, size, old_root, root, proof)
    return {"type": "consistency", "origin": origin, "old_size": old_size, "size": size, "old_root": _b64(old_root),
            "root": _b64(root), "proof": [_b64(h) for h in proof], "old_checkpoint": notes.get(old_size),
            "checkpoint": notes.get(size)}
