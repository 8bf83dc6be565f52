"""RFC 8785 JSON Canonicalization Scheme (JCS) for the values aiaudit signs.

Records hold strings, integers, booleans, null, arrays and objects only (ARCHITECTURE.md:
integers, not floats). For those, JCS is: object members sorted by the UTF-16 code units
of their names (RFC 8785 §3.2.3), no insignificant white space, and strings escaped as
in ECMAScript JSON.stringify (RFC 8785 §3.2.2.2): only `"`, `\\` and the controls below
U+0020, with \\b \\t \\n \\f \\r short forms and lowercase \\u00xx otherwise. orjson
escapes exactly that set in the same forms and writes UTF-8, so once keys are in UTF-16
order it produces JCS bytes (tests/unit/test_jcs.py holds it to the `rfc8785` reference
implementation). Floats are refused: their JCS form (ECMAScript number rendering) is the
classic cross-language mismatch.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from aiaudit.pipeline.errors import NotCanonicalizable

# JavaScript's Number.MAX_SAFE_INTEGER: larger integers lose precision in other languages.
MAX_SAFE_INTEGER = 2**53 - 1


def _utf16_key(item: tuple[str, Any]) -> bytes:
    return item[0].encode("utf-16-be")


def _check(value: Any) -> bool:
    """Refuse what JCS cannot render the same everywhere. Returns True when every object key is
    ASCII, so code-point order (Python's sort) equals UTF-16 order and the fast path applies."""
    ascii_keys = True
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
                continue
            raise NotCanonicalizable(f"integer {v} is outside the IEEE 754 safe range")
        if t is dict:
            for k in v:
                if type(k) is not str:
                    raise NotCanonicalizable(f"object key {k!r} is not a string")
                if ascii_keys and not k.isascii():
                    ascii_keys = False
            stack.extend(v.values())
            continue
        if t is list or t is tuple:
            stack.extend(v)
            continue
        if t is float:
            raise NotCanonicalizable(f"float {v!r}: records carry integers only")
        raise NotCanonicalizable(f"{t.__name__} is not a JSON value")
    return ascii_keys


def _sorted_utf16(value: Any) -> Any:
    if type(value) is dict:
        return {k: _sorted_utf16(v) for k, v in sorted(value.items(), key=_utf16_key)}
    if type(value) in (list, tuple):
        return [_sorted_utf16(v) for v in value]
    return value


def canonicalize(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of `value`.

    Raises NotCanonicalizable for floats, non-string keys, unsafe integers and non-JSON types.
    Strings must be valid Unicode (lone surrogates fail to encode as UTF-8 and raise).
    """
    try:
        if _check(value):
            # All keys ASCII: code-point order, which orjson's sort uses, is UTF-16 order.
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        # A non-ASCII key: sort by UTF-16 code units ourselves (RFC 8785 §3.2.3).
        return orjson.dumps(_sorted_utf16(value))
    except orjson.JSONEncodeError as exc:  # e.g. a lone surrogate, which is not Unicode text
        raise NotCanonicalizable(f"not canonicalizable: {exc}") from exc


# A JSON number with a fraction or exponent as a member value ("name":) or an array element ([ or
# ,), in JSON without white space: where this never matches, such bytes hold no float (bytes with
# white space are not canonical anyway). It can match inside a string too; the full check decides.
# (Three patterns, each led by a literal: several times faster than one with an alternation.)
_FLOATISH = tuple(re.compile(p) for p in (rb'":-?[0-9]+[.eE]', rb",-?[0-9]+[.eE]", rb"\[-?[0-9]+[.eE]"))


def is_canonical(value: Any, data: bytes) -> bool:
    """Whether `data` are exactly the RFC 8785 bytes of `value` (parsed from `data`), as
    `canonicalize(value) == data` says, but without walking the value when `data` is ASCII and
    holds no float: then orjson's sorted rendering, with integers held to 53 bits, is JCS.
    Raises NotCanonicalizable where canonicalize would."""
    if data.isascii() and not any(p.search(data) for p in _FLOATISH):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER) == data
        except orjson.JSONEncodeError:
            pass  # an unsafe integer: the full check names it
    return canonicalize(value) == data
