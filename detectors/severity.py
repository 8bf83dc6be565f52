"""One severity scale for every detector (pure).

Every finding carries a score in [0, 1], and its severity follows from that score alone:

    score      severity
    >= 0.90    critical
    >= 0.75    high
    >= 0.50    medium
    <  0.50    (no finding)

so a higher score is never a lower severity, whichever detector fired. The IsolationForest's raw
score is put on this scale through its own severity thresholds (piecewise linear through
(0, 0), (medium threshold, 0.50), (high, 0.75), (critical, 0.90), (1, 1)), so the model's severity
is unchanged; a rule hit scores RULE_SCORE of its severity; a finding's score is the highest of
its detectors'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

BANDS = (("critical", 0.90), ("high", 0.75), ("medium", 0.50))
RULE_SCORE = {"medium": 0.60, "high": 0.80, "critical": 0.95}


def severity_for(score: float) -> str | None:
    """The severity of a finding with this score, or None below the lowest band."""
    for name, floor in BANDS:
        if score >= floor:
            return name
    return None


def model_score(raw: float, thresholds: Mapping[str, float]) -> float:
    """The model's raw score on the common scale, through its thresholds (see the module text)."""
    floors = dict(BANDS)
    knots = [(0.0, 0.0)]
    for name in ("medium", "high", "critical"):
        t = min(max(float(thresholds[name]), knots[-1][0] + 1e-9), 1.0 - 1e-9 * (4 - len(knots)))
        knots.append((t, floors[name]))
    knots.append((1.0, 1.0))
    raw = min(max(raw, 0.0), 1.0)
    for (x0, y0), (x1, y1) in zip(knots, knots[1:]):
        if raw <= x1:
            return y0 + (y1 - y0) * (raw - x0) / (x1 - x0) if x1 > x0 else y1
    return 1.0


def finding_score(model: float, rule_severities: Iterable[str]) -> float:
    """A finding's score: the highest of the model's (already on the scale) and its rule hits'."""
    return max([model, *(RULE_SCORE[s] for s in rule_severities)])
