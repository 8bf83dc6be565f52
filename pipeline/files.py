"""Files the workers keep or watch: a state file written so that a kill -9 leaves the old one or
the new one, never a torn one; and a file's stamp, to tell that it changed."""

from __future__ import annotations

import os
from pathlib import Path


def replace_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write `data` to a temporary file beside `path` (fsync), rename it over `path`, and fsync the
    folder, so the rename itself survives a crash. The folder is created (0700) if missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def file_stamp(path: Path) -> tuple[int, int] | None:
    """The file's modification time and size (None when it cannot be read): a change in either
    is a change of the file for whoever reloads it."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size
