"""RFC 8785 JSON Canonicalization Scheme (JCS) for the values aiaudit signs.

Records hold strings, integers, booleans, null, arrays and objects only (ARCHITECTURE.md:
integers, not floats). For those, JCS is: object members sorted by the UTF-16 code units
of their names (RFC 8785 §3.2.3), no insignificant white space, and strings escaped as
in ECMAScript JSON.stringify (RFC 8785 §3.2.2.2): only `"`, `\\` and the controls below
U+0020, with \\b \\t \\n \\f \\r short forms and lowercase \\u00xx otherwise. Python's json
encoder with ensure_ascii=False escapes exactly that set in the same forms, so after
sorting keys by UTF-16 it produces JCS bytes. Floats are refused: their JCS form
(ECMAScript number rendering) is the classic cross-language mismatch.
"""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

# JavaScript's Number.MAX_SAFE_INTEGER: larger integers lose precision in other languages.
MAX_SAFE_INTEGER = 2**53 - 1


class NotCanonicalizable(ValueError):
    """The value holds something JCS cannot render the same in every language."""


def _utf16_key(item: tuple[str, Any]) -> bytes:
    return item[0].encode("utf-16-be")


def _prepare(value: Any) -> Any:
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise NotCanonicalizable(f"object key {k!r} is not a string")
        return {k: _prepare(v) for k, v in sorted(value.items(), key=_utf16_key)}
    if isinstance(value, (list, tuple)):
        return [_prepare(v) for v in value]
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise NotCanonicalizable(f"integer {value} is outside the IEEE 754 safe range")
        return value
    if isinstance(value, float):
        raise NotCanonicalizable(f"float {value!r}: records carry integers only")
    raise NotCanonicalizable(f"{type(value).__name__} is not a JSON value")


def canonicalize(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of `value`.

    Raises NotCanonicalizable for floats, non-string keys, unsafe integers and non-JSON types.
    Strings must be valid Unicode (lone surrogates fail to encode as UTF-8 and raise).
    """
    text = _encoder.encode(_prepare(value))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotCanonicalizable(f"string is not valid Unicode: {exc}") from exc
