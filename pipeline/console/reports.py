"""The console's reports on disk: one folder each under <state_dir>/console/reports/, its state in
status.json (running, done, failed, or interrupted: the process making it stopped first), its
progress written as it goes, no more than once a second."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPORT_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
FILES = ("report.html", "report.json", "export.jsonl", "manifest.json", "report.pdf")
MAX_LISTED = 100
MAX_MESSAGE = 500
INTERRUPTED = "the console stopped while making it: nothing of it is offered; make it again"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


class Status:
    """One report's status.json, written whole (a temporary file renamed over it)."""

    def __init__(self, folder: Path, doc: dict[str, Any], *, every_s: float = 1.0) -> None:
        self.folder, self.doc, self.every_s = folder, doc, every_s
        self._written = float("-inf")

    @classmethod
    def start(cls, folder: Path, **facts: Any) -> Status:
        """A new report's folder (owner only) and its status: running, by this process."""
        folder.mkdir(parents=True, mode=0o700)
        status = cls(folder, {**facts, "state": "running", "host": socket.gethostname(), "pid": os.getpid()})
        status.write()
        return status

    def write(self) -> None:
        tmp = self.folder / "status.tmp"
        tmp.write_text(json.dumps(self.doc))
        tmp.replace(self.folder / "status.json")
        self._written = time.monotonic()

    def progress(self, message: str) -> None:
        """What the report is doing now (written at most every `every_s`)."""
        self.doc["message"] = message[:MAX_MESSAGE]
        if time.monotonic() - self._written >= self.every_s:
            self.write()

    def finish(self, state: str, message: str) -> None:
        self.doc.update(state=state, message=message[:MAX_MESSAGE])
        self.write()


def listed(reports_dir: Path, running: set[str], *, alive: Callable[[int], bool] = pid_alive,
           host: str | None = None) -> list[dict[str, Any]]:
    """The newest reports first, each with its files when done. A report left "running" by a process
    of this machine that no longer runs it (stopped, or this process and not among `running`) is
    "interrupted", and its status file says so from then on."""
    host = host or socket.gethostname()
    out: list[dict[str, Any]] = []
    if not reports_dir.is_dir():
        return out
    for folder in sorted(reports_dir.iterdir(), reverse=True):
        if not REPORT_ID.fullmatch(folder.name):
            continue
        try:
            doc = json.loads((folder / "status.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        if doc.get("state") == "running" and folder.name not in running and doc.get("host") == host:
            pid = doc.get("pid")
            if type(pid) is not int or pid == os.getpid() or not alive(pid):
                Status(folder, doc).finish("interrupted", INTERRUPTED)
        files = [f for f in FILES if (folder / f).is_file()] if doc.get("state") == "done" else []
        out.append({**doc, "id": folder.name, "files": files})
        if len(out) >= MAX_LISTED:
            break
    return out
