"""One severity scale: a higher score is never a lower severity, whichever detector fired."""

import random

import pytest

from aiaudit.detectors.severity import BANDS, RULE_SCORE, finding_score, model_score, severity_for

THRESHOLDS = {"medium": 0.58, "high": 0.63, "critical": 0.70}  # a trained model's, typically close together
RANK = {None: 0, "medium": 1, "high": 2, "critical": 3}


def model_severity(raw: float) -> str | None:  # as the model has always judged its own score
    for name in ("critical", "high", "medium"):
        if raw >= THRESHOLDS[name]:
            return name
    return None


def test_the_bands_are_one_documented_mapping():
    assert [severity_for(s) for s in (0.0, 0.49, 0.5, 0.74, 0.75, 0.89, 0.9, 1.0)] == \
        [None, None, "medium", "medium", "high", "high", "critical", "critical"]
    assert all(severity_for(RULE_SCORE[name]) == name for name in RULE_SCORE)
    assert [floor for _, floor in BANDS] == sorted((floor for _, floor in BANDS), reverse=True)


def test_the_model_keeps_its_severities_and_its_order_on_the_scale():
    rng = random.Random(3)
    raws = sorted(rng.random() for _ in range(5000)) + [0.58, 0.63, 0.70, 0.0, 1.0]
    for raw in raws:
        assert severity_for(model_score(raw, THRESHOLDS)) == model_severity(raw), raw
        assert 0.0 <= model_score(raw, THRESHOLDS) <= 1.0
    mapped = [model_score(r, THRESHOLDS) for r in sorted(raws)]
    assert mapped == sorted(mapped)  # monotone


@pytest.mark.parametrize("thresholds", [{"medium": 0.9, "high": 0.9, "critical": 0.9},
                                        {"medium": 0.99, "high": 0.999, "critical": 1.0}])
def test_degenerate_thresholds_stay_monotone_and_in_range(thresholds):
    mapped = [model_score(r / 1000, thresholds) for r in range(1001)]
    assert mapped == sorted(mapped) and 0.0 <= min(mapped) and max(mapped) <= 1.0


def test_a_finding_is_as_severe_as_its_score_says_whichever_detector_fired():
    rng = random.Random(5)
    findings = []
    for _ in range(2000):
        raw = rng.random()
        rules = rng.sample(["medium", "high", "critical"], rng.randint(0, 2))
        score = finding_score(model_score(raw, THRESHOLDS), rules)
        findings.append((score, severity_for(score)))
        # the finding is never less severe than any detector in it
        assert RANK[severity_for(score)] >= max([RANK[model_severity(raw)], *(RANK[r] for r in rules)])
    findings.sort()
    assert [RANK[s] for _, s in findings] == sorted(RANK[s] for _, s in findings)
