import json
import random

import pytest
import rfc8785

from aiaudit.pipeline.errors import NotCanonicalizable
from aiaudit.pipeline.jcs import canonicalize, is_canonical


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


def _verdict(value, data):
    """Canonical or not (a refusal is "not canonical": the verifier reports both as not_canonical)."""
    try:
        return canonicalize(value) == data
    except NotCanonicalizable:
        return False


def _fast(value, data):
    try:
        return is_canonical(value, data)
    except NotCanonicalizable:
        return False


FAST_PATH_CASES = [
    b'{"a":1,"b":[true,null,"x"]}',  # canonical, ASCII, no float: the fast path
    b'{"b":1,"a":2}',  # keys out of order
    b'{"a": 1}',  # white space
    b'{"a":1.5}',  # a float: refused by both
    b'{"a":[1e3]}',
    b'{"a":9007199254740993}',  # beyond 2^53: refused by both
    b'{"a":-9007199254740993}',
    b'{"a":9007199254740991}',  # the largest safe integer: canonical
    b'{"a":"x:1.5"}',  # float-looking text inside a string: the full check, still canonical
    b'{"\xc3\xa9":1,"z":2}',  # a non-ASCII key
    b'{"z":2,"\xc3\xa9":1}',
    b'{"a":"\\u00e9"}',  # an escape JCS does not use
    b'{"a":"\\/"}',
    b'{"a":1.0}',
    b'{"a":[1,2,3.25,4]}',
    b'{"a": 1.5}',  # white space and a float
    b'{"t":"09:00:00.008806Z","n":[0.5]}',  # a time inside a string, then a real float
    b'{"t":"09:00:00.008806Z","n":[5]}',
]


@pytest.mark.parametrize("data", FAST_PATH_CASES)
def test_fast_canonical_check_agrees_with_canonicalize(data):
    value = json.loads(data)
    assert _fast(value, data) == _verdict(value, data)


def test_fast_canonical_check_agrees_on_random_documents():
    rng = random.Random(8785)
    for _ in range(3000):
        value = {"k": _random_value(rng), "v": _random_value(rng)}
        try:
            data = canonicalize(value)
        except NotCanonicalizable:
            continue
        variants = [data, json.dumps(value).encode(), json.dumps(value, sort_keys=True, separators=(",", ":")).encode()]
        for d in variants:
            assert _fast(json.loads(d), d) == _verdict(json.loads(d), d), d
