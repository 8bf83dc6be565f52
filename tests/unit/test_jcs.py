import json
import random

import pytest
import rfc8785

from pipeline.errors import NotCanonicalizable
from pipeline.jcs import canonicalize


def test_rfc8785_sorting_example_sorts_by_utf16_code_units():
    # RFC 8785 §3.2.3: property names sorted by UTF-16 code units, not code points.
    obj = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
           "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}
    keys = list(json.loads(canonicalize(obj)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_rfc8785_string_escapes():
    # Only ", \ and controls are escaped; short forms where JSON has them; others \u00xx lowercase.
    assert canonicalize("\u20ac$\u000f\nA'B\"\\\\\"/") == '"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'.encode()
    assert canonicalize("\b\t\f\r\x1f\x7f") == b'"\\b\\t\\f\\r\\u001f\x7f"'


def test_no_whitespace_and_literals():
    assert canonicalize({"b": [1, True, None], "a": {"y": "z"}}) == b'{"a":{"y":"z"},"b":[1,true,null]}'


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(6 if depth < 3 else 4)
    alphabet = "aZ09 \"\\\n\t\u00e9\u20ac\U0001f600\ufb33\x01/"
    if kind == 0:
        return rng.randint(-(2**53) + 1, 2**53 - 1)
    if kind == 1:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.randint(0, 10)
    if kind == 4:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))): _random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 5))}


def test_agrees_with_reference_implementation_on_random_values():
    rng = random.Random(8785)
    for _ in range(2000):
        value = _random_value(rng)
        assert canonicalize(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("bad", [1.5, {"a": 0.1}, [2**53], {1: "x"}, b"bytes", "\ud800"])
def test_refuses_what_is_not_language_neutral(bad):
    with pytest.raises(NotCanonicalizable):
        canonicalize(bad)
