"""The spans a receiver has made events of, by event id: in memory (the newest `keep`) and in an
append-only file beside the receiver's state, so a sender that sends a span again (its retry after
a lost answer, or after the receiver restarted) gets no second event for it."""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from aiaudit.pipeline.files import replace_atomically

_ID = re.compile(r"[0-9a-f-]{36}")


class Seen:
    def __init__(self, path: Path, keep: int) -> None:
        self.path, self.keep = path, keep
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._unsaved: list[str] = []
        self._lock = threading.Lock()
        self._lines = 0
        try:
            with open(path, encoding="ascii", errors="replace") as fh:
                for line in fh:
                    self._lines += 1
                    line = line.strip()
                    if _ID.fullmatch(line):  # a torn last line (a crash mid-write) is skipped
                        self._remember(line)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _remember(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self.keep:
            self._ids.popitem(last=False)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def note(self, event_id: str) -> None:
        """Remember this one now; on disk with the next flush()."""
        with self._lock:
            if event_id not in self._ids:
                self._remember(event_id)
                self._unsaved.append(event_id)

    def flush(self) -> None:
        """Every noted id on disk (fsync) before this returns."""
        with self._lock:
            new, self._unsaved = self._unsaved, []
            if new:
                self._append(new)

    def add_all(self, event_ids: Iterable[str]) -> None:
        """Remember these, on disk (fsync) before this returns."""
        for e in event_ids:
            self.note(e)
        self.flush()

    def _append(self, new: list[str]) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, "".join(e + "\n" for e in new).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._lines += len(new)
        if self._lines > 2 * self.keep:  # compact: the newest `keep` only
            replace_atomically(self.path, "".join(e + "\n" for e in self._ids).encode("ascii"))
            self._lines = len(self._ids)
