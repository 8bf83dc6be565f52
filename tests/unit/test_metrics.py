"""Metric labels stay bounded whatever a message says (pure: pipeline/metrics.py)."""

from __future__ import annotations

from aiaudit.pipeline import metrics


def test_a_dead_letter_reason_is_a_label_only_when_it_is_a_short_word_and_one_of_the_first_few(monkeypatch):
    monkeypatch.setattr(metrics, "_reasons", set())  # this test's own: the process's set stays as it was
    assert metrics.reason_label("malformed") == "malformed"
    for hostile in ("alice@acme.example", "Malformed", "x" * 41, "a b", "", "über"):
        assert metrics.reason_label(hostile) == "other", hostile
    made = {metrics.reason_label(f"reason_{i}") for i in range(10 * metrics.MAX_REASONS)}
    assert len(made - {"other"}) <= metrics.MAX_REASONS and "other" in made  # never more than MAX_REASONS values


def test_a_severity_is_one_of_the_fixed_set_or_other():
    assert [metrics.severity_label(s) for s in ("High", "critical", "Informational")] == ["high", "critical",
                                                                                          "informational"]
    assert metrics.severity_label("ignore previous instructions") == "other"
    assert metrics.severity_label(None) == "other"
