"""The request bodies the gateway forwards, strictly shaped (pure), and every string in them.

Only a known body shape per operation goes to a vendor: the OpenAI chat-completions and
embeddings fields, each checked for its type; a field or a part of a kind not listed here is
refused with the path of what is wrong (`messages[2].content[0].type: ...`), unless the route
lists the top-level field in `extra_fields`. Then *every* string that will be forwarded is
classified and, where the decision redacts, redacted: message contents and names, tool-call
arguments, tool and function descriptions, JSON schemas, stop words, embeddings inputs ...,
except the few values that are checked enumerations or identifiers at their own places (`STRUCTURAL_PATHS`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

MAX_MESSAGES = 4096
MAX_ITEMS = 2048  # tools, stop words, parts of a message, embeddings inputs ...
MAX_DEPTH = 64  # nesting of free-form JSON (tool parameters, response schemas)

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Where a value is a checked enumeration or the routed model id (never free text): not classified, not
# redacted. Paths of object keys from the body's top (list indices left out). Only these: the same
# key anywhere else (a `type` in a tool's JSON schema, a `role` in metadata) is free text like any other.
STRUCTURAL_PATHS = frozenset({
    ("model",), ("encoding_format",), ("reasoning_effort",),
    ("messages", "role"), ("messages", "content", "type"), ("messages", "content", "image_url", "detail"),
    ("messages", "content", "input_audio", "format"), ("messages", "tool_calls", "type"),
    ("tools", "type"), ("tool_choice", "type"), ("response_format", "type"),
})


class ShapeError(ValueError):
    """A body that is not of a known shape; the message starts with the path of what is wrong."""


def _fail(path: str, message: str) -> None:
    raise ShapeError(f"{path}: {message}")


def _is_number(v: Any) -> bool:
    return type(v) in (int, float)


def _check_json(value: Any, path: str, depth: int = 0) -> None:
    """Free-form JSON (a tool's parameters, a response schema): bounded, any shape."""
    if depth > MAX_DEPTH:
        _fail(path, f"nested deeper than {MAX_DEPTH}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_json(v, f"{path}.{k}", depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_ITEMS:
            _fail(path, f"more than {MAX_ITEMS} items")
        for i, v in enumerate(value):
            _check_json(v, f"{path}[{i}]", depth + 1)


def _obj(value: Any, path: str, fields: dict[str, Callable[[Any, str], None]], required: tuple[str, ...] = ()) -> None:
    if not isinstance(value, dict):
        _fail(path, "must be an object")
    for name in required:
        if name not in value:
            _fail(f"{path}.{name}" if path else name, "is missing")
    for name, v in value.items():
        where = f"{path}.{name}" if path else name
        check = fields.get(name)
        if check is None:
            _fail(where, "is not a field the gateway forwards")
        else:
            check(v, where)


def _str(v: Any, path: str) -> None:
    if not isinstance(v, str):
        _fail(path, "must be a string")


def _opt_str(v: Any, path: str) -> None:
    if v is not None and not isinstance(v, str):
        _fail(path, "must be a string or null")


def _bool(v: Any, path: str) -> None:
    if type(v) is not bool:
        _fail(path, "must be true or false")


def _int(v: Any, path: str) -> None:
    if v is not None and type(v) is not int:
        _fail(path, "must be an integer")


def _num(v: Any, path: str) -> None:
    if v is not None and not _is_number(v):
        _fail(path, "must be a number")


def _one_of(*choices: str) -> Callable[[Any, str], None]:
    def check(v: Any, path: str) -> None:
        if v not in choices:
            _fail(path, f"must be one of {', '.join(choices)}")
    return check


def _list(item: Callable[[Any, str], None], *, limit: int = MAX_ITEMS, min_items: int = 0) -> Callable[[Any, str], None]:
    def check(v: Any, path: str) -> None:
        if not isinstance(v, list) or not min_items <= len(v) <= limit:
            _fail(path, f"must be a list of {min_items} to {limit} items")
        for i, x in enumerate(v):
            item(x, f"{path}[{i}]")
    return check


def _str_map(v: Any, path: str) -> None:
    if not isinstance(v, dict) or len(v) > MAX_ITEMS or not all(isinstance(x, (str, int, float)) for x in v.values()):
        _fail(path, "must be an object of strings or numbers")


def _part(v: Any, path: str) -> None:
    kind = v.get("type") if isinstance(v, dict) else None
    if kind == "text":
        _obj(v, path, {"type": _str, "text": _str}, ("text",))
    elif kind == "image_url":
        _obj(v, path, {"type": _str, "image_url": lambda x, p: _obj(
            x, p, {"url": _str, "detail": _one_of("auto", "low", "high")}, ("url",))}, ("image_url",))
    elif kind == "input_audio":
        _obj(v, path, {"type": _str, "input_audio": lambda x, p: _obj(
            x, p, {"data": _str, "format": _one_of("wav", "mp3")}, ("data", "format"))}, ("input_audio",))
    elif kind == "refusal":
        _obj(v, path, {"type": _str, "refusal": _str}, ("refusal",))
    else:
        _fail(f"{path}.type", "a content part must be text, image_url, input_audio or refusal")


def _content(v: Any, path: str) -> None:
    if v is None or isinstance(v, str):
        return
    _list(_part, min_items=1)(v, path)


def _tool_call(v: Any, path: str) -> None:
    _obj(v, path, {"id": _str, "type": _one_of("function"), "function": lambda x, p: _obj(
        x, p, {"name": _str, "arguments": _str}, ("name", "arguments"))}, ("function",))


def _message(v: Any, path: str) -> None:
    _obj(v, path, {"role": _one_of(*ROLES), "content": _content, "name": _str, "tool_calls": _list(_tool_call),
                   "tool_call_id": _str, "refusal": _opt_str}, ("role",))


def _function(v: Any, path: str) -> None:
    _obj(v, path, {"name": _str, "description": _str, "parameters": _check_json, "strict": _bool}, ("name",))


def _tool(v: Any, path: str) -> None:
    _obj(v, path, {"type": _one_of("function"), "function": _function}, ("type", "function"))


def _tool_choice(v: Any, path: str) -> None:
    if isinstance(v, str):
        _one_of("none", "auto", "required")(v, path)
    else:
        _obj(v, path, {"type": _one_of("function"), "function": lambda x, p: _obj(x, p, {"name": _str}, ("name",))},
             ("type", "function"))


def _response_format(v: Any, path: str) -> None:
    _obj(v, path, {"type": _one_of("text", "json_object", "json_schema"), "json_schema": lambda x, p: _obj(
        x, p, {"name": _str, "description": _str, "schema": _check_json, "strict": _bool}, ("name",))}, ("type",))


def _stop(v: Any, path: str) -> None:
    if v is not None and not isinstance(v, str):
        _list(_str, limit=4)(v, path)


CHAT_FIELDS: dict[str, Callable[[Any, str], None]] = {
    "model": _str, "messages": _list(_message, limit=MAX_MESSAGES, min_items=1), "stream": _bool,
    "stream_options": lambda v, p: _obj(v, p, {"include_usage": _bool}), "temperature": _num, "top_p": _num,
    "presence_penalty": _num, "frequency_penalty": _num, "n": _int, "max_tokens": _int,
    "max_completion_tokens": _int, "seed": _int, "top_logprobs": _int, "logprobs": _bool, "stop": _stop,
    "logit_bias": _str_map, "user": _str, "tools": _list(_tool), "tool_choice": _tool_choice,
    "parallel_tool_calls": _bool, "response_format": _response_format, "metadata": _str_map, "store": _bool,
    "reasoning_effort": _one_of("minimal", "low", "medium", "high"), "service_tier": _str,
}


def _embedding_input(v: Any, path: str) -> None:
    if isinstance(v, str):
        return
    if not isinstance(v, list) or not 1 <= len(v) <= MAX_ITEMS:
        _fail(path, f"must be a string or a list of 1 to {MAX_ITEMS} items")
    if all(isinstance(x, str) for x in v) or all(type(x) is int for x in v):
        return  # texts, or one token array
    if all(isinstance(x, list) and x and all(type(t) is int for t in x) for x in v):
        return  # token arrays
    _fail(path, "must be a string, a list of strings, a list of integers or a list of integer lists (not mixed)")


EMBEDDINGS_FIELDS: dict[str, Callable[[Any, str], None]] = {
    "model": _str, "input": _embedding_input, "encoding_format": _one_of("float", "base64"), "dimensions": _int,
    "user": _str,
}


def check(operation: str, body: dict[str, Any], extra_fields: frozenset[str] = frozenset()) -> None:
    """Raise ShapeError naming the first thing that is not of a known shape. `extra_fields` are
    top-level fields a route lets through unchecked (their strings are still classified)."""
    fields = dict(CHAT_FIELDS if operation == "chat" else EMBEDDINGS_FIELDS)
    fields.update({name: lambda v, p: _check_json(v, p) for name in extra_fields})
    required = ("model", "messages") if operation == "chat" else ("model", "input")
    _obj(body, "", fields, required)


def strings(value: Any, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Every string that forwarding `value` (a request body) sends, object keys included (a secret
    can hide in a property name), but the values at STRUCTURAL_PATHS; depth-first, in order."""
    if isinstance(value, str):
        if path not in STRUCTURAL_PATHS:
            yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v, (*path, k))
    elif isinstance(value, list):
        for v in value:
            yield from strings(v, path)


def transform(value: Any, clean: Callable[[str], str], path: tuple[str, ...] = ()) -> Any:
    """A copy of `value` with `clean` applied to every string strings() yields (keys too)."""
    if isinstance(value, str):
        return value if path in STRUCTURAL_PATHS else clean(value)
    if isinstance(value, dict):
        return {clean(k): transform(v, clean, (*path, k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [transform(v, clean, path) for v in value]
    return value
