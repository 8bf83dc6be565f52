"""The evaluation set issue 22's detectors are judged on: fixed, independent, and shaped as told."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from aiaudit.detectors import evalset

# Recorded when the set was committed (before any detector change of issue 22). A change to the
# generator changes it: the set must not be edited to suit the detectors.
DIGEST = "bf8abc9d8a171816e795c21e3acf8f489dc741f052ef4eb0f72db87a3ed7d1b2"


@pytest.fixture(scope="module")
def made():
    return evalset.evaluation_set()


def test_it_imports_nothing_from_the_tuning_or_heldout_families():
    tree = ast.parse(Path(evalset.__file__).read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if "traffic" in m or "heldout" in m or m.startswith("aiaudit")}, imported


def test_the_set_is_the_one_recorded_and_every_scenario_is_in_it(made):
    train, test, fresh = made
    assert evalset.digest() == DIGEST
    labels = Counter(label for _, label in test)
    assert set(labels) == {"normal", *evalset.SCENARIOS, *evalset.UNNAMED}
    misuse = len(test) - labels["normal"]
    assert 0.002 < misuse / len(test) < 0.01  # a 1% budget can cover 80% of it, and no more than that
    assert all("label" not in e and "scenario" not in e for e, _ in test)  # labels beside, never inside
    assert [e["occurred_at"] for e in train] == sorted(e["occurred_at"] for e in train)
    assert max(e["occurred_at"] for e in train) < min(e["occurred_at"] for e, _ in test)
    assert fresh and max(e["occurred_at"] for e in fresh) < "2026-09-14" and set(map(id, fresh)) <= set(map(id, train))


def test_the_scenarios_are_what_their_names_say(made):
    train, test, _ = made
    seen_before = {e["actor"]["id"] for e in train}
    by = {}
    for e, label in test:
        by.setdefault(label, []).append(e)
    assert all(e["actor"]["id"] not in seen_before for e in by["unseen_identity_volume"])
    exfil = by["slow_exfil_new_vendor"]
    ordinary = train + [e for e, label in test if label == "normal"]
    mine = {(e["gen_ai_provider_name"], e["gen_ai_request_model"]) for e in ordinary
            if e["actor"]["id"] == exfil[0]["actor"]["id"]}
    assert ("ibm.watsonx", "granite-3-8b") not in mine and all(e["prompt_classification"]["level"] == "restricted"
                                                                for e in exfil)
    for e in by["response_above_ceiling"]:
        ceiling = evalset.LEVEL_ORDER.index(evalset.CEILING[e["gen_ai_provider_name"]])
        assert evalset.LEVEL_ORDER.index(e["response_classification"]["level"]) > ceiling
    assert all(e["content_features"]["injection_markers"] == 3 for e in by["single_strong_injection"])
    assert {e["occurred_at"][:10] for e in by["weekend_triple_volume"]} == {"2026-09-26"}  # a Saturday


def test_detect_evaluate_reports_every_scenario_of_the_set(made):
    from aiaudit.detectors.evaluate import evaluate

    [report] = evaluate(families=("evaluation",))
    assert report.family == "evaluation" and report.overall["test_events"] == len(made[1])
    assert [row.scenario for row in report.rows] == [*evalset.SCENARIOS, *evalset.UNNAMED]
    # The overall recall counts the scenarios the issue names; the two it does not are reported without a target.
    assert report.overall["misuse_events"] == sum(1 for _, label in made[1] if label in evalset.SCENARIOS)
    assert report.untargeted == evalset.UNNAMED
    assert "never_below_baseline" in report.meets_targets() and "fresh_week_findings" in report.meets_targets()
    # A fresh scorer's first week is measured on ordinary traffic only, every event of it.
    assert report.fresh is not None and report.fresh["events"] == len(made[2])
    assert report.fresh["per_1000"] == 1000 * report.fresh["findings"] / len(made[2])
    # Judged on incidents (detectors/incidents.py): paged ones among all, per 1,000 normal events.
    o = report.overall
    normal = sum(1 for _, label in made[1] if label == "normal")
    assert 0 < o["paged"] <= o["incidents"] and o["paged_per_1000_normal"] == 1000 * o["paged"] / normal
    assert 0 <= o["paged_precision"] <= 1 and 0 <= o["paged_recall"] <= 1
    assert {"precision_at_paging", "pages_per_1000_normal"} <= set(report.meets_targets())
    # Issue 22's targets hold on it (a detector change that loses one fails here, not in a later audit).
    assert report.meets_targets() == dict.fromkeys(report.meets_targets(), True), report.meets_targets()
