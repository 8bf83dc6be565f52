"""Evaluation (pure): IsolationForest against a per-identity z-score baseline, per scenario.

Both see the same feature vectors. At a fixed alert budget (the top share of test events by
score), it reports precision and recall overall and recall per scenario, and PR-AUC (average
precision) per scenario against normal traffic and overall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score

from detectors.features import FEATURES, FeatureExtractor
from detectors.model import train
from detectors.traffic import SCENARIOS, labelled_traffic


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
    recall_if: float
    recall_z: float
    ap_if: float
    ap_z: float


def _at_budget(scores: np.ndarray, budget: float) -> np.ndarray:
    k = max(1, int(round(len(scores) * budget)))
    return scores >= np.sort(scores)[-k]


def evaluate(seed: int = 7, budget: float = 0.01) -> tuple[list[Row], dict[str, float]]:
    train_events, test = labelled_traffic(seed)
    fx = FeatureExtractor()
    baseline = ZScoreBaseline()
    X_train = np.array([fx(e) for e in train_events])
    for e, x in zip(train_events, X_train):
        baseline.score_and_update(e["actor"]["id"], x)
    detector = train(X_train, version=f"eval-{seed}", seed=seed)
    X_test = np.array([fx(e) for e, _ in test])
    labels = np.array([label for _, label in test])
    s_if = detector.score(X_test)
    s_z = np.array([baseline.score_and_update(e["actor"]["id"], x) for (e, _), x in zip(test, X_test)])
    bad = labels != "normal"
    flag_if, flag_z = _at_budget(s_if, budget), _at_budget(s_z, budget)
    rows = []
    for name in SCENARIOS:
        mine = labels == name
        keep = mine | ~bad
        rows.append(Row(name, int(mine.sum()), float(flag_if[mine].mean()), float(flag_z[mine].mean()),
                        float(average_precision_score(mine[keep], s_if[keep])),
                        float(average_precision_score(mine[keep], s_z[keep]))))
    overall = {
        "budget": budget, "test_events": len(test), "misuse_events": int(bad.sum()),
        "precision_if": float(bad[flag_if].mean()), "precision_z": float(bad[flag_z].mean()),
        "recall_if": float(flag_if[bad].mean()), "recall_z": float(flag_z[bad].mean()),
        "pr_auc_if": float(average_precision_score(bad, s_if)), "pr_auc_z": float(average_precision_score(bad, s_z)),
    }
    return rows, overall


def table(rows: list[Row], overall: dict[str, float]) -> str:
    lines = [f"alert budget {overall['budget']:.1%} of {overall['test_events']} test events "
             f"({overall['misuse_events']} misuse); IF = IsolationForest, z = per-identity z-score",
             f"{'scenario':<30} {'events':>6} {'recall IF':>9} {'recall z':>8} {'PR-AUC IF':>9} {'PR-AUC z':>8}"]
    for r in rows:
        lines.append(f"{r.scenario:<30} {r.events:>6} {r.recall_if:>9.2f} {r.recall_z:>8.2f} {r.ap_if:>9.2f} {r.ap_z:>8.2f}")
    lines.append(f"{'overall':<30} {overall['misuse_events']:>6} {overall['recall_if']:>9.2f} {overall['recall_z']:>8.2f} "
                 f"{overall['pr_auc_if']:>9.2f} {overall['pr_auc_z']:>8.2f}")
    lines.append(f"precision at budget: IF {overall['precision_if']:.2f}, z {overall['precision_z']:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(*evaluate()))
    print(f"features: {', '.join(FEATURES)}")
