"""Reading an `aiaudit export` file (the file edge of pipeline/export/format.py). Needs no
database client: `aiaudit verify --export` runs on the light install."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from aiaudit.pipeline.chain.record import Record
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.export.format import ExportFile, add_line

MAX_PROBLEMS = 1000  # malformed lines listed one by one; past that, counted


def read_export_file(path: Path, *, lenient: bool = False) -> ExportFile:
    """All of an `aiaudit export` file. Raises ConfigError naming a bad line; with lenient (the
    verifier), every bad line is kept in `problems` with its number and reading goes on."""
    into = ExportFile()
    skipped = 0
    for lineno, line in _lines(path):
        try:
            add_line(into, line)
        except ValueError as exc:
            if not lenient:
                raise ConfigError(f"{path}:{lineno}: not an export line: {exc}") from exc
            if len(into.problems) < MAX_PROBLEMS:
                into.problems.append((lineno, str(exc)[:300]))
            else:
                skipped += 1
    if skipped:
        into.problems.append((0, f"{skipped} more malformed line(s) not listed"))
    return into


def read_export(path: Path) -> Iterator[Record]:
    """Only the records of an `aiaudit export` file, in file order (streamed). Raises ConfigError naming a bad line."""
    for lineno, line in _lines(path):
        try:
            one = ExportFile()
            add_line(one, line)
        except ValueError as exc:
            raise ConfigError(f"{path}:{lineno}: not an export line: {exc}") from exc
        yield from one.records


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the export: {exc.strerror}") from exc
    with fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                yield lineno, line
