"""What a witness remembers: the latest cosigned (size, root) per origin, in one JSON file.

Written atomically (a temporary file in the same folder, fsync, rename, fsync of the folder), so
after a kill -9 the file holds either the old state or the new one, never a torn one; the
server persists before it answers, so a cosignature it handed out is never forgotten.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.files import replace_atomically
from aiaudit.pipeline.witness.core import Cosigned


class WitnessState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()  # check-then-persist is one step (the spec's rollback race)
        self._state = self._read()

    def _read(self) -> dict[str, Cosigned]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: cannot read the witness state: {exc}; refusing to start "
                              "(a witness that forgot what it cosigned could cosign a fork)") from exc
        try:
            return {origin: Cosigned(int(v["size"]), bytes.fromhex(v["root"]), str(v.get("cosignature", "")))
                    for origin, v in raw.items()}
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{self.path}: the witness state is malformed: {exc}") from exc

    def get(self, origin: str) -> Cosigned | None:
        return self._state.get(origin)

    def put(self, origin: str, cosigned: Cosigned) -> None:
        """Record a new cosigned size for `origin`, durably, before the caller answers."""
        new = {**self._state, origin: cosigned}
        data = json.dumps({o: {"size": c.size, "root": c.root.hex(), "cosignature": c.cosignature}
                           for o, c in sorted(new.items())}, indent=1)
        replace_atomically(self.path, data.encode())
        self._state = new
