"""How rows and notes are printed: a table, JSON, JSON Lines or CSV on stdout; notes on stderr."""

from __future__ import annotations

import csv
import json
import re
import sys
from typing import Any

from aiaudit.pipeline.store.filters import MAX_LIMIT

# Control characters (C0, DEL, C1) and bidirectional overrides in stored text (an actor id, a vendor
# name, a reason: some of it came from an emitter) would drive the analyst's terminal or reorder
# what it shows: in a table or CSV they are printed as escapes. JSON escapes them itself.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def shown(value: Any) -> str:
    """A value as a table or CSV cell: its text, with unsafe characters as visible escapes."""
    text = "" if value is None else str(value)
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


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
        w.writerows({c: shown(r[c]) for c in cols} for r in rows)
        return
    text = [[shown(r[c]) for c in cols] for r in rows]
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
