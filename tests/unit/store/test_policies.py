"""What changed between two policy documents (store/policies.py, pure): the entries named, the
line-by-line difference, and the form evidence reports state kept as it was."""

from __future__ import annotations

from aiaudit.pipeline.store.policies import MAX_DIFF_LINES, changed_entries, diff_lines

ONE = {"routes": {"chat": {"vendor": "openai", "deny": []}}, "vendors": {"openai": "internal"}, "version": "1"}
TWO = {"routes": {"chat": {"vendor": "openai", "deny": ["secret.*"]}, "code": {}}, "vendors": {},
       "version": "2", "retention_days": {"standard": 90}}


def test_entries_name_what_was_added_removed_and_changed_to_the_depth_asked():
    assert changed_entries(ONE, ONE) == []
    assert changed_entries(ONE, TWO) == ["retention_days added", "routes.code added", "routes.chat changed",
                                         "vendors.openai removed", "version changed"]
    assert changed_entries(ONE, TWO, 3) == ["retention_days added", "routes.code added", "routes.chat.deny changed",
                                            "vendors.openai removed", "version changed"]
    assert changed_entries(ONE, [1], 3) == ["(document) changed"]


def test_the_difference_is_a_unified_diff_of_the_sorted_document_and_bounded():
    lines = diff_lines(ONE, TWO, "v1", "v2")
    assert lines[:2] == ["--- v1", "+++ v2"]
    assert '+        "secret.*"' in lines and '-  "version": "1"' in lines and '+  "version": "2"' in lines
    assert not any(line.startswith(("+", "-")) and "vendor\": \"openai\"" in line for line in lines[2:])  # unchanged
    assert diff_lines(ONE, ONE, "a", "b") == []
    huge = diff_lines({"k": list(range(5000))}, {"k": list(range(5000, 10000))}, "a", "b")
    assert len(huge) == MAX_DIFF_LINES + 1 and huge[-1].startswith("... ") and huge[-1].endswith(" more lines")
