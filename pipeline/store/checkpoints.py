"""The checkpoints table: every chain's tree states and signed checkpoints. Rows and SQL (pure)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiaudit.pipeline.chain.checkpoint import TreeState
from aiaudit.pipeline.contract import parse_ts

COLUMNS = ("origin", "size", "root", "compact_range", "tile_levels", "tile_indexes", "tile_hashes", "note", "issued_at",
           "timestamp", "final")


def row(state: TreeState) -> list[Any]:
    return [state.origin, state.size, state.range.root().hex(), [h.hex() for h in state.range.hashes],
            [t[0] for t in state.tiles], [t[1] for t in state.tiles], [t[2].hex() for t in state.tiles], state.note,
            parse_ts(state.issued_at), state.timestamp, state.final]


def select_states(db: str, origin: str) -> tuple[str, dict[str, Any]]:
    """Every stored tree state of one chain (size, root, compact range, tiles), for verification."""
    return (f"SELECT size, root, compact_range, tile_levels, tile_indexes, tile_hashes FROM {db}.checkpoints "
            "WHERE origin = {o:String} ORDER BY size", {"o": origin})


def select_timestamps(db: str, origin: str) -> tuple[str, dict[str, Any]]:
    """(size, timestamp line) of the log's signed times of one chain (checkpoints and heartbeats)."""
    return (f"SELECT size, timestamp FROM {db}.checkpoints WHERE origin = {{o:String}} AND timestamp IS NOT NULL "
            "ORDER BY size", {"o": origin})


def select_finals(db: str, origin: str) -> tuple[str, dict[str, Any]]:
    """(size, final note) of one chain's signed final checkpoints (a closed chain has one)."""
    return (f"SELECT size, final FROM {db}.checkpoints WHERE origin = {{o:String}} AND final IS NOT NULL "
            "ORDER BY size", {"o": origin})


def select_signed_origins(db: str) -> tuple[str, dict[str, Any]]:
    """Every chain with at least one signed checkpoint."""
    return f"SELECT DISTINCT origin FROM {db}.checkpoints WHERE note IS NOT NULL ORDER BY origin", {}


def select_notes(db: str, origin: str, until_size: int | None = None) -> tuple[str, dict[str, Any]]:
    """(size, note) of the signed checkpoints of one chain, by size (each size once)."""
    cond = "" if until_size is None else " AND size <= {until:UInt64}"
    return (f"SELECT size, any(note) FROM {db}.checkpoints WHERE origin = {{origin:String}} AND note IS NOT NULL{cond} "
            "GROUP BY size ORDER BY size", {"origin": origin, "until": until_size if until_size is not None else 0})


def select_overview(db: str) -> tuple[str, dict[str, Any]]:
    """Per chain: its newest stored size, newest signed checkpoint's size, and when its newest
    checkpoint or heartbeat was issued (the console's overview; `aiaudit verify` checks them)."""
    return (f"SELECT origin, max(size) AS newest_size, maxIf(size, note IS NOT NULL) AS signed_size, "
            f"max(issued_at) AS newest_signed_at FROM {db}.checkpoints GROUP BY origin ORDER BY origin", {})


def select_newest_cosignatures(db: str) -> tuple[str, dict[str, Any]]:
    """Per chain and witness: the largest size cosigned and when it last cosigned."""
    return (f"SELECT origin, witness, max(size) AS cosigned_size, max(cosigned_at) AS last_cosigned_at FROM {db}.cosignatures "
            "GROUP BY origin, witness ORDER BY origin, witness", {})


def select_tiles(db: str, origin: str, level: int, first: int, last: int) -> tuple[str, dict[str, Any]]:
    """(index, hash) of the stored subtrees of one chain at `level` between two indices."""
    return (f"SELECT idx, any(h) FROM {db}.checkpoints ARRAY JOIN tile_levels AS lvl, tile_indexes AS idx, "
            "tile_hashes AS h WHERE origin = {origin:String} AND lvl = {level:UInt8} "
            "AND idx BETWEEN {first:UInt64} AND {last:UInt64} GROUP BY idx ORDER BY idx",
            {"origin": origin, "level": level, "first": first, "last": last})


COSIGNATURE_COLUMNS = ("origin", "size", "witness", "cosignature", "cosigned_at")


def cosignature_row(origin: str, size: int, witness: str, line: str, timestamp: int) -> list[Any]:
    return [origin, size, witness, line, datetime.fromtimestamp(timestamp, timezone.utc)]


def select_last_cosignature(db: str, origin: str, witness: str) -> tuple[str, dict[str, Any]]:
    """(size, cosignature line) of the largest size `witness` cosigned for `origin` (no row when none)."""
    return (f"SELECT size, cosignature FROM {db}.cosignatures WHERE origin = {{o:String}} AND witness = {{w:String}} "
            "ORDER BY size DESC LIMIT 1", {"o": origin, "w": witness})


def select_cosignatures(db: str, origin: str) -> tuple[str, dict[str, Any]]:
    """(size, cosignature line) of every stored cosignature of one chain."""
    return (f"SELECT size, cosignature FROM {db}.cosignatures WHERE origin = {{o:String}} ORDER BY size",
            {"o": origin})
