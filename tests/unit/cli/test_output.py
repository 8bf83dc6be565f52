"""What the command line prints of stored text: an emitter's control characters or bidirectional
overrides never reach the analyst's terminal as such (they could recolour, hide or reorder it)."""

from __future__ import annotations

import json

import pytest

from aiaudit.pipeline.cli.output import print_rows, shown

HOSTILE = "mallory\x1b[2J\x1b]0;pwned\x07@acme.example\u202egnp.exe\r\nfake row"


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_control_characters_and_bidi_overrides_are_printed_as_escapes(fmt, capsys):
    print_rows([{"actor": HOSTILE, "n": 1}], fmt)
    out = capsys.readouterr().out.replace("\r\n", "\n")  # CSV ends its lines with CRLF
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\r" not in out
    assert "\\x1b[2J" in out and "\\u202e" in out and "mallory" in out
    assert len(out.strip().splitlines()) == 2  # a header and one row: the hostile newline made none


def test_json_keeps_the_text_exact_and_escaped(capsys):
    print_rows([{"actor": HOSTILE}], "json")
    out = capsys.readouterr().out
    assert "\x1b" not in out and json.loads(out) == [{"actor": HOSTILE}]


def test_ordinary_text_is_unchanged():
    assert shown("Zoë Ångström <zoe@acme.example> 日本語") == "Zoë Ångström <zoe@acme.example> 日本語"
    assert shown(None) == "" and shown(3.5) == "3.5"
