"""The auditor's monitor state (`aiaudit verify --state FILE`): the newest checkpoint each chain
was verified at, so that the next run demands consistency with it, as a transparency-log monitor
does. A witness can be restored from an old copy of its own state and cosign a rewrite; the
auditor's state is the auditor's, and a rewritten history does not have the root it saw.

    {"aiaudit_monitor": 1, "chains": {origin: {"size": int, "root": hex, "verified_at": RFC 3339}}}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from aiaudit.pipeline.errors import ConfigError, Failure

VERSION = 1
MAX_STATE_BYTES = 16 << 20


def read_state(path: Path) -> dict[str, tuple[int, bytes]]:
    """origin -> (size, root) from a monitor state file; an absent file is an empty state (the first
    run). Raises ConfigError for anything malformed: a state that cannot be read is never ignored."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the monitor state: {exc.strerror}") from exc
    try:
        if len(data) > MAX_STATE_BYTES:
            raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("aiaudit_monitor") != VERSION or not isinstance(doc.get("chains"), dict):
            raise ValueError(f"not an aiaudit monitor state (version {VERSION})")
        out: dict[str, tuple[int, bytes]] = {}
        for origin, entry in doc["chains"].items():
            size, root = entry["size"], bytes.fromhex(entry["root"])
            if type(size) is not int or size < 1 or len(root) != 32:
                raise ValueError(f"{origin}: size or root malformed")
            out[origin] = (size, root)
        return out
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(f"{path}: not a monitor state: {exc}") from exc


def gone(state: Mapping[str, tuple[int, bytes]], present: Iterable[str]) -> list[Failure]:
    """Chains a previous run verified that this (whole) run found nothing of."""
    seen = set(present)
    return [Failure(origin, None, "inconsistent_with_state", f"a previous run verified this chain at size {size}; "
                    "now nothing of it is there (--state): the chain was removed")
            for origin, (size, _) in sorted(state.items()) if origin not in seen]


def write_state(path: Path, old: Mapping[str, tuple[int, bytes]], anchors: Mapping[str, tuple[int, bytes]],
                verified_at: str) -> int:
    """Keep, per chain, the newest of the old anchor and this run's; returns how many advanced.
    Written atomically (0600)."""
    chains: dict[str, dict[str, object]] = {o: {"size": s, "root": r.hex()} for o, (s, r) in old.items()}
    advanced = 0
    for origin, (size, root) in anchors.items():
        if origin not in old or size > old[origin][0]:
            chains[origin] = {"size": size, "root": root.hex(), "verified_at": verified_at}
            advanced += 1
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"aiaudit_monitor": VERSION, "chains": chains}, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return advanced
