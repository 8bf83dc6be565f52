"""How rows and notes are printed: a table, JSON, JSON Lines or CSV on stdout; notes on stderr."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

from aiaudit.pipeline.store.filters import MAX_LIMIT


def print_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":  # one JSON array
        print(json.dumps(rows, default=str, indent=1))
        return
    if fmt == "jsonl":  # JSON Lines: one object per line
        for row in rows:
            print(json.dumps(row, default=str))
        return
    if not rows:
        print("(no records)")
        return
    cols = list(rows[0])
    if fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
        return
    text = [[("" if r[c] is None else str(r[c])) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in text)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for t in text:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))


def note(text: str) -> None:
    print(f"aiaudit: note: {text}", file=sys.stderr)


def warn(text: str) -> None:
    print(f"aiaudit: warning: {text}", file=sys.stderr)


def more_notice(shown: int, what: str) -> None:
    note(f"more {what}s match than the {shown} shown (oldest first): raise --limit (at most {MAX_LIMIT:,}), narrow "
         "the filters, or use `aiaudit export` for all of them")
