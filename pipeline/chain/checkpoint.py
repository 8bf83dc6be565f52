"""The chain's tree state and signed checkpoints, one message per committed batch (pure).

Every transaction that appends records to a chain also writes one message to the checkpoints
topic (same partition), so the tree can never disagree with the records it covers:

    {"v": 1, "origin", "size", "root": hex, "range": [hex, ...], "tiles": [[level, index, hex], ...],
     "note": signed C2SP checkpoint | null, "timestamp": cosignature line | null (absent before
     heartbeats existed), "issued_at": RFC 3339}

`range` is the CompactRange at `size` (a restarted or new owner of the chain continues from it
without rereading the chain); `tiles` are the perfect subtrees completed by this batch at
levels 8, 16, 24 ... (merkle.TILE_HEIGHT): with the records' own leaf hashes they give any
subtree hash from at most a few hundred stored hashes per tree level band, so a proof never
reads a whole chain. `note` is the signed checkpoint (origin, size, root) when one is due:
at most every `interval_s`, and always for the last size before the chain goes quiet.

`timestamp` is the log's signed time: a C2SP tlog-cosignature (v1, type 0x04) by the log's own
checkpoint key over the checkpoint at `size`: "at time T the chain was (size, root)". Every
signed checkpoint carries one, and a chain with nothing new gets a heartbeat (a message with
`timestamp` and no note, for a size already signed) every heartbeat interval, so that "nothing
happened since the last checkpoint" is signed, and a logger that stopped, or a tail of records
and checkpoints removed, shows as a newest signed time that is too old (the tail rule of
`aiaudit verify --max-age`). The two signatures by the one key cannot be confused: a note
signature covers the checkpoint text (which starts with the origin), a cosignature covers
"cosignature/v1\ntime T\n" followed by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline.chain.merkle import TILE_HEIGHT, CompactRange
from aiaudit.pipeline.chain.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Checkpoint,
    NoteError,
    NoteSigner,
    Verifier,
    cosign,
    open_note,
    sign_checkpoint,
    sign_note,
)

MESSAGE_VERSION = 1
MAX_TILES_PER_MESSAGE = 1 << 16  # a batch of at most 5,000 records completes far fewer
MAX_TIMESTAMP_CHARS = 300  # a cosignature line is about 150
MAX_FINAL_CHARS = 2048
FINAL_TAG = "aiaudit/final/v1\n"  # a final checkpoint's note text: this line, then the C2SP checkpoint body


def final_text(checkpoint: Checkpoint) -> str:
    """What a final checkpoint's note signs: a domain line, then the checkpoint (never a valid C2SP
    checkpoint of the origin itself, whose first line is the origin)."""
    return FINAL_TAG + checkpoint.text()


def open_final(note: str, origin: str, verifiers: Sequence[Verifier]) -> Checkpoint:
    """The checkpoint a final note closes the chain at. Raises NoteError."""
    text, _ = open_note(note, verifiers)
    if not text.startswith(FINAL_TAG):
        raise NoteError("not a final checkpoint (its first line is not aiaudit/final/v1)")
    cp = Checkpoint.parse(text[len(FINAL_TAG):])
    if cp.origin != origin:
        raise NoteError(f"a final checkpoint of {cp.origin!r}, not {origin!r}")
    return cp


@dataclass(frozen=True)
class TreeState:
    """What a checkpoints-topic message says."""

    origin: str
    range: CompactRange
    tiles: tuple[tuple[int, int, bytes], ...]
    note: str | None
    issued_at: str
    timestamp: str | None = None  # the log's tlog-cosignature line over the checkpoint at `size`
    final: str | None = None  # the signed final checkpoint: the chain is closed at `size` (final_note)

    @property
    def size(self) -> int:
        return self.range.size

    def to_wire(self) -> bytes:
        return orjson.dumps({
            "v": MESSAGE_VERSION, "origin": self.origin, "size": self.range.size, "root": self.range.root().hex(),
            "range": [h.hex() for h in self.range.hashes],
            "tiles": [[level, index, h.hex()] for level, index, h in self.tiles],
            "note": self.note, "timestamp": self.timestamp, "issued_at": self.issued_at,
            **({"final": self.final} if self.final is not None else {}),
        })

    @classmethod
    def from_wire(cls, data: bytes) -> "TreeState":
        """Parse and check a checkpoints-topic message. Raises ValueError on anything malformed,
        including a range whose root is not the stated root."""
        try:
            obj = orjson.loads(data)
            if obj["v"] != MESSAGE_VERSION or type(obj["origin"]) is not str or type(obj["size"]) is not int:
                raise ValueError("not a v1 tree-state message")
            rng = CompactRange(obj["size"], [bytes.fromhex(h) for h in obj["range"]])
            if rng.root().hex() != obj["root"]:
                raise ValueError("stated root is not the root of the stated range")
            tiles = obj["tiles"]
            if not isinstance(tiles, list) or len(tiles) > MAX_TILES_PER_MESSAGE:
                raise ValueError("tiles is not a bounded list")
            parsed = []
            for level, index, h in tiles:
                if type(level) is not int or type(index) is not int or level <= 0 or level % TILE_HEIGHT or index < 0:
                    raise ValueError(f"tile ({level}, {index}) is not at a stored level")
                digest = bytes.fromhex(h)
                if len(digest) != 32:
                    raise ValueError("tile hash is not 32 bytes")
                parsed.append((level, index, digest))
            note = obj["note"]
            if note is not None and type(note) is not str:
                raise ValueError("note is not text")
            if type(obj["issued_at"]) is not str:
                raise ValueError("issued_at is not text")
            stamp = obj.get("timestamp")
            if stamp is not None and (type(stamp) is not str or len(stamp) > MAX_TIMESTAMP_CHARS):
                raise ValueError("timestamp is not a cosignature line")
            final = obj.get("final")  # absent from every message before chains could be closed
            if final is not None and (type(final) is not str or len(final) > MAX_FINAL_CHARS):
                raise ValueError("final is not a bounded text")
            return cls(obj["origin"], rng, tuple(parsed), note, obj["issued_at"], stamp, final)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a tree-state message: {type(exc).__name__}: {exc}") from exc


def extend(tree: CompactRange, leaf_hashes: Sequence[str]) -> tuple[CompactRange, list[tuple[int, int, bytes]]]:
    """A copy of `tree` with the leaves (hex) appended, and the stored-level subtrees they completed."""
    out = tree.copy()
    tiles = []
    for leaf in leaf_hashes:
        for level, index, h in out.append(bytes.fromhex(leaf)):
            if level % TILE_HEIGHT == 0:
                tiles.append((level, index, h))
    return out, tiles


def checkpoint_note(origin: str, tree: CompactRange, key: NoteSigner | None) -> str | None:
    """The signed checkpoint of `tree`, or None without a key."""
    if key is None:
        return None
    return sign_checkpoint(Checkpoint(origin, tree.size, tree.root()), key)


def log_clock(origin: str, key: NoteSigner) -> NoteSigner:
    """The signer of the log's timestamps: the checkpoint key's sign function as a cosigner (0x04)."""
    return NoteSigner(origin, SIG_COSIGNATURE_V1, key.sign, key.public_key)


def timestamp_line(origin: str, tree: CompactRange, clock: NoteSigner | None, unix_s: int) -> str | None:
    """The log's signed time over the checkpoint of `tree` (a tlog-cosignature line), or None without a key."""
    if clock is None:
        return None
    return cosign(Checkpoint(origin, tree.size, tree.root()).text(), clock, unix_s).line()


def due(now_s: float, last_signed_s: float, interval_s: float) -> bool:
    return now_s - last_signed_s >= interval_s




# --- who signs: the Notary the chain worker asks ---------------------------------------------


class NotaryRefused(Exception):
    """The signer will not sign this tree: `behind` (ask again when the tree reaches signed_size)
    or a refusal to take seriously (the tree is not an extension of what it signed)."""

    def __init__(self, signed_size: int, reason: str) -> None:
        super().__init__(reason)
        self.signed_size, self.reason = signed_size, reason

    @property
    def behind(self) -> bool:
        return self.reason.startswith("behind")


class NotaryUnavailable(Exception):
    """The signer did not answer (the chain goes on; its checkpoint waits)."""


class Notary(Protocol):
    """Signs a chain's checkpoint and the log's time over it. `base` (a tree whose size the
    notary signed, as far as the worker knows) and `leaves` (the 32-byte leaf hashes appended
    since, concatenated) make `tree`; a notary that holds no history may look at `tree` only."""

    remote: bool
    public_key: bytes

    def signed_tree(self, origin: str) -> CompactRange:
        """What the notary signed last for `origin` (size 0 when nothing)."""
        ...

    def sign(self, origin: str, base: CompactRange, leaves: bytes, tree: CompactRange,
             unix_s: int, *, final: bool = False) -> tuple[str, str]:
        """(signed checkpoint note, timestamp cosignature line) for `tree`; with `final`, the note is
        the final checkpoint (final_text) that closes the chain at `tree`: nothing is signed for it after."""
        ...


class LocalNotary:
    """The checkpoint key in the chain worker's own process (development, or a worker whose host
    is trusted with it): signs any tree it is given. The signer process (pipeline/signer/) is the
    custody option: it signs only extensions of what it signed."""

    remote = False

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.public_key = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def signed_tree(self, origin: str) -> CompactRange:
        return CompactRange()

    def sign(self, origin: str, base: CompactRange, leaves: bytes, tree: CompactRange,
             unix_s: int, *, final: bool = False) -> tuple[str, str]:
        cp = Checkpoint(origin, tree.size, tree.root())
        signer = NoteSigner.local(origin, SIG_ED25519, self.key)
        note = sign_note(final_text(cp), signer) if final else sign_checkpoint(cp, signer)
        stamp = cosign(cp.text(), NoteSigner.local(origin, SIG_COSIGNATURE_V1, self.key), unix_s).line()
        return note, stamp
