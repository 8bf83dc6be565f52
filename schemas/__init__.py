"""The event contract's files (ai_request.avsc), shipped in the wheel for every language to read.

`enum_symbols` reads a closed set (classification levels, decisions, actor types) from the
.avsc itself, so no module writes them out again. Standard library only: detectors/ uses it
without importing the pipeline.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

EVENT_SCHEMA_FILE = "ai_request.avsc"


def event_schema_text() -> str:
    return resources.files(__name__).joinpath(EVENT_SCHEMA_FILE).read_text(encoding="utf-8")


def earlier_event_schemas() -> list[dict[str, Any]]:
    """Every earlier version of the event schema (history/ai_request.<n>.avsc), oldest first: events
    their writers sent still decode, resolved to the current schema (fields added since get their defaults)."""
    folder = resources.files(__name__).joinpath("history")
    names = sorted((f.name for f in folder.iterdir() if f.name.endswith(".avsc")),
                   key=lambda n: int(n.split(".")[-2]))
    return [json.loads(folder.joinpath(n).read_text(encoding="utf-8")) for n in names]


@lru_cache(maxsize=1)
def event_schema() -> dict[str, Any]:
    return json.loads(event_schema_text())  # type: ignore[no-any-return]  # the .avsc is a JSON object


def enum_symbols(name: str) -> tuple[str, ...]:
    """The symbols of the event schema's enum `name`, in schema order. Raises KeyError if there is none."""
    stack: list[Any] = [event_schema()]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "enum" and node.get("name") == name:
                return tuple(node["symbols"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise KeyError(f"the event schema has no enum {name}")
