"""Evaluation (pure): the shipped detection (IsolationForest + rule detectors) against the model
alone and a per-identity z-score baseline, per scenario, on two families of labelled traffic.

The tuning family (`detectors/traffic.py`) is what detections were tuned on; the held-out family
(`detectors/heldout.py`) was written before tuning and is only evaluated. Each family: train on
its normal weeks, score its test week (normal traffic plus injected misuse), and report

- recall per scenario at a fixed alert budget (the top share of test events by score; a rule
  hit ranks above every model-only score, by severity), for shipped, model alone, baseline;
- precision and recall overall at that budget, and at the default alert threshold (what a
  deployment raises: a rule hit, or a model score above its `medium` threshold);
- PR-AUC (average precision) overall.

Targets, judged on the held-out family: recall >= 0.8 at a 1% budget, precision >= 0.7 at the
default threshold, and no scenario where the baseline's recall beats the shipped detection's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from aiaudit.detectors.features import FEATURES, FeatureExtractor, IdentityState, event_time, extract, observe
from aiaudit.detectors.model import Detector, train
from aiaudit.detectors.rules import RuleConfig, RuleHit, check
from aiaudit.detectors.severity import finding_score, model_score, severity_for
from aiaudit.detectors.traffic import Event, Family, Labelled

TARGETS = {"recall_at_budget": 0.8, "precision_at_threshold": 0.7}


class ZScoreBaseline:
    """Per identity, running mean and variance of each feature (Welford); score = max |z|."""

    def __init__(self) -> None:
        self.stats: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}

    def score_and_update(self, identity: str, x: np.ndarray) -> float:
        n, mean, m2 = self.stats.get(identity, (0, np.zeros_like(x), np.zeros_like(x)))
        score = 0.0
        if n >= 2:
            std = np.sqrt(m2 / (n - 1)) + 1e-3
            score = float(np.max(np.abs(x - mean) / std))
        n += 1
        delta = x - mean
        mean = mean + delta / n
        m2 = m2 + delta * (x - mean)
        self.stats[identity] = (n, mean, m2)
        return score


@dataclass
class Row:
    scenario: str
    events: int
    recall_shipped: float
    recall_model: float
    recall_z: float
    recall_threshold: float  # the shipped detection at its default threshold
    detectors: dict[str, int] = field(default_factory=dict)  # which detectors fired on the scenario's events


@dataclass
class Report:
    family: str
    rows: list[Row]
    overall: dict[str, float]

    def meets_targets(self) -> dict[str, bool]:
        return {"recall_at_budget": self.overall["recall_shipped"] >= TARGETS["recall_at_budget"],
                "precision_at_threshold": self.overall["precision_threshold"] >= TARGETS["precision_at_threshold"],
                "never_below_baseline": all(r.recall_shipped >= r.recall_z for r in self.rows)}


def _at_budget(scores: np.ndarray, budget: float) -> np.ndarray:
    k = max(1, int(round(len(scores) * budget)))
    flagged: np.ndarray = scores >= np.sort(scores)[-k]
    return flagged


def shipped_score(on_scale: float, hits: list[RuleHit]) -> float:
    """The shipped detection's score: the finding score on the one scale (detectors/severity.py),
    the model's score already put on it."""
    return finding_score(on_scale, [h.severity for h in hits])


def score_test(detector: Detector, rules: RuleConfig, train_events: list[Event], test: list[Labelled]
               ) -> tuple[np.ndarray, list[list[RuleHit]], np.ndarray]:
    """(feature vectors, rule hits, z-baseline scores) of the test events, with identity state
    carried over from the training weeks, as a scorer running since then would have it."""
    states: dict[str, IdentityState] = {}
    baseline = ZScoreBaseline()
    for e in train_events:
        state = states.setdefault(e["actor"]["id"], IdentityState())
        baseline.score_and_update(e["actor"]["id"], np.array(extract(e, state)))
        observe(e, state)
    X, hits, z = [], [], []
    for e, _ in test:
        state = states.setdefault(e["actor"]["id"], IdentityState())
        x = extract(e, state)
        X.append(x)
        hits.append(check(e, state, rules, event_time(e)))
        z.append(baseline.score_and_update(e["actor"]["id"], np.array(x)))
        observe(e, state)
    return np.array(X), hits, np.array(z)


def evaluate_family(name: str, traffic: tuple[list[Event], list[Labelled]], family: Family, scenarios: tuple[str, ...],
                    *, seed: int, budget: float) -> Report:
    train_events, test = traffic
    fx = FeatureExtractor()
    detector = train(np.array([fx(e) for e in train_events]), version=f"eval-{seed}", seed=seed)
    rules = RuleConfig(vendor_max_level=dict(family.max_level))
    X, hits, s_z = score_test(detector, rules, train_events, test)
    labels = np.array([label for _, label in test])
    s_model = np.array([model_score(float(s), detector.thresholds) for s in detector.score(X)])
    s_shipped = np.array([shipped_score(float(s), h) for s, h in zip(s_model, hits)])
    at_threshold = np.array([severity_for(float(s)) is not None for s in s_shipped])
    bad = labels != "normal"
    flag = {"shipped": _at_budget(s_shipped, budget), "model": _at_budget(s_model, budget), "z": _at_budget(s_z, budget)}
    rows = []
    for scenario in scenarios:
        mine = labels == scenario
        fired: dict[str, int] = {}
        for i in np.flatnonzero(mine):
            names = [h.rule for h in hits[i]] + (["isolation-forest"] if severity_for(float(s_model[i])) else [])
            for n in names:
                fired[n] = fired.get(n, 0) + 1
        rows.append(Row(scenario, int(mine.sum()), float(flag["shipped"][mine].mean()), float(flag["model"][mine].mean()),
                        float(flag["z"][mine].mean()), float(at_threshold[mine].mean()), fired))
    overall = {
        "budget": budget, "test_events": len(test), "misuse_events": int(bad.sum()),
        "recall_shipped": float(flag["shipped"][bad].mean()), "recall_model": float(flag["model"][bad].mean()),
        "recall_z": float(flag["z"][bad].mean()),
        "precision_shipped": float(bad[flag["shipped"]].mean()), "precision_model": float(bad[flag["model"]].mean()),
        "precision_z": float(bad[flag["z"]].mean()),
        "alerts_threshold": int(at_threshold.sum()),
        "precision_threshold": float(bad[at_threshold].mean()) if at_threshold.any() else 0.0,
        "recall_threshold": float(at_threshold[bad].mean()),
        "pr_auc_shipped": float(average_precision_score(bad, s_shipped)),
        "pr_auc_model": float(average_precision_score(bad, s_model)), "pr_auc_z": float(average_precision_score(bad, s_z)),
    }
    return Report(name, rows, overall)


def evaluate(seed: int = 7, budget: float = 0.01, *, families: tuple[str, ...] = ("tuning", "held-out")) -> list[Report]:
    """Reports per family: `tuning` (what detections were tuned on), `held-out` (read while tuning:
    no longer a judge), and `evaluation` (detectors/evalset.py, the fixed set issue 22's detectors
    are judged on; its seed is the recorded one whatever `seed` says)."""
    from aiaudit.detectors import evalset, heldout, traffic

    evaluation = Family(vendors={v: list(ms) for v, ms in evalset.VENDORS.items()}, max_level=dict(evalset.CEILING),
                        unapproved=evalset.UNLISTED, routes=list(evalset.ROUTES), domain="initech.example",
                        agent_prefix="bot-")
    sources: dict[str, tuple[Callable[[int], Any], Family, tuple[str, ...]]] = {
        "tuning": (traffic.labelled_traffic, traffic.TUNING, traffic.SCENARIOS),
        "held-out": (heldout.heldout_traffic, heldout.HELDOUT, heldout.SCENARIOS),
        "evaluation": (lambda _seed: evalset.evaluation_set()[:2], evaluation, evalset.SCENARIOS + evalset.UNNAMED),
    }
    return [evaluate_family(name, sources[name][0](seed), sources[name][1], sources[name][2], seed=seed, budget=budget)
            for name in families]


def table(report: Report) -> str:
    o = report.overall
    lines = [f"{report.family} family: {o['test_events']} test events ({o['misuse_events']} misuse), alert budget "
             f"{o['budget']:.1%}; shipped = IsolationForest + rules, model = IsolationForest alone, z = per-identity z-score",
             f"{'scenario':<32} {'events':>6} {'shipped':>7} {'model':>6} {'z':>5} {'at thr.':>7}  detectors that fired"]
    for r in report.rows:
        fired = ", ".join(f"{k} {v}" for k, v in sorted(r.detectors.items(), key=lambda kv: -kv[1])) or "-"
        lines.append(f"{r.scenario:<32} {r.events:>6} {r.recall_shipped:>7.2f} {r.recall_model:>6.2f} {r.recall_z:>5.2f} "
                     f"{r.recall_threshold:>7.2f}  {fired}")
    lines.append(f"{'recall (all misuse)':<32} {o['misuse_events']:>6} {o['recall_shipped']:>7.2f} {o['recall_model']:>6.2f} "
                 f"{o['recall_z']:>5.2f} {o['recall_threshold']:>7.2f}")
    lines.append(f"{'precision at budget':<32} {'':>6} {o['precision_shipped']:>7.2f} {o['precision_model']:>6.2f} "
                 f"{o['precision_z']:>5.2f}")
    lines.append(f"{'PR-AUC':<32} {'':>6} {o['pr_auc_shipped']:>7.2f} {o['pr_auc_model']:>6.2f} {o['pr_auc_z']:>5.2f}")
    lines.append(f"at the default threshold: {o['alerts_threshold']} alerts, precision {o['precision_threshold']:.2f}, "
                 f"recall {o['recall_threshold']:.2f}")
    met = report.meets_targets()
    lines.append("targets (recall >= 0.8 at budget, precision >= 0.7 at threshold, no scenario below the baseline): " +
                 ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    for rep in evaluate():
        print(table(rep))
        print()
    print(f"features: {', '.join(FEATURES)}")
