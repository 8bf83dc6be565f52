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
from aiaudit.detectors.incidents import MODEL, Grouper, Incident
from aiaudit.detectors.model import Detector, model_on_scale, train
from aiaudit.detectors.rules import RuleConfig, RuleHit, check
from aiaudit.detectors.severity import RULE_SCORE, finding_score, severity_for
from aiaudit.detectors.traffic import Event, Family, Labelled

TARGETS = {"recall_at_budget": 0.8, "precision_at_threshold": 0.7, "fresh_week_per_1000": 1.0,
           "precision_at_paging": 0.9, "pages_per_1000_normal": 1.0}


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
    untargeted: tuple[str, ...] = ()  # scenarios reported without a target (left out of the overall recall)
    fresh: dict[str, float] | None = None  # a fresh scorer's first week of ordinary traffic (fresh_week)

    def meets_targets(self) -> dict[str, bool]:
        met = {"recall_at_budget": self.overall["recall_shipped"] >= TARGETS["recall_at_budget"],
               "precision_at_threshold": self.overall["precision_threshold"] >= TARGETS["precision_at_threshold"],
               "never_below_baseline": all(r.recall_shipped >= r.recall_z for r in self.rows
                                           if r.scenario not in self.untargeted)}
        if self.fresh is not None:  # the evaluation family: judged on incidents as issue 22 defines them
            del met["precision_at_threshold"]
            met["precision_at_paging"] = self.overall["paged_precision"] >= TARGETS["precision_at_paging"]
            met["pages_per_1000_normal"] = self.overall["paged_per_1000_normal"] <= TARGETS["pages_per_1000_normal"]
            met["fresh_week_findings"] = self.fresh["per_1000"] <= TARGETS["fresh_week_per_1000"]
        return met


def _at_budget(scores: np.ndarray, budget: float) -> np.ndarray:
    k = max(1, int(round(len(scores) * budget)))
    flagged: np.ndarray = scores >= np.sort(scores)[-k]
    return flagged


def shipped_score(on_scale: float, hits: list[RuleHit]) -> float:
    """The shipped detection's score: the finding score on the one scale (detectors/severity.py),
    the model's score already put on it."""
    return finding_score(on_scale, [h.severity for h in hits])


def score_test(detector: Detector, rules: RuleConfig, train_events: list[Event], test: list[Labelled]
               ) -> tuple[np.ndarray, list[list[RuleHit]], np.ndarray, np.ndarray]:
    """(feature vectors, rule hits, z-baseline scores, model scores on the one scale, gated as the
    scorer gates them) of the test events, with identity state carried over from the training
    weeks, as a scorer running since then would have it."""
    states: dict[str, IdentityState] = {}
    baseline = ZScoreBaseline()
    for e in train_events:
        state = states.setdefault(e["actor"]["id"], IdentityState())
        baseline.score_and_update(e["actor"]["id"], np.array(extract(e, state)))
        observe(e, state)
    since = event_time(train_events[0]) if train_events else None
    X, hits, z, learning = [], [], [], []
    for e, _ in test:
        state = states.setdefault(e["actor"]["id"], IdentityState())
        x = extract(e, state)
        X.append(x)
        now = event_time(e)
        hits.append(check(e, state, rules, now, scorer_since=since if since is not None else now))
        learning.append(rules.learning(state, now))
        z.append(baseline.score_and_update(e["actor"]["id"], np.array(x)))
        observe(e, state)
    Xa = np.array(X)
    raw = detector.score(Xa)
    s_model = np.array([model_on_scale(detector, float(r), x, new)[0] for r, x, new in zip(raw, Xa, learning)])
    return Xa, hits, np.array(z), s_model


def fresh_week(detector: Detector, rules: RuleConfig, events: list[Event]) -> dict[str, float]:
    """What a scorer started fresh (no identity state) raises on a week of ordinary traffic:
    findings per 1,000 events, and the detectors behind them."""
    states: dict[str, IdentityState] = {}
    X, hits, learning = [], [], []
    since = event_time(events[0]) if events else None
    for e in events:
        state = states.setdefault(e["actor"]["id"], IdentityState())
        X.append(extract(e, state))
        now = event_time(e)
        hits.append(check(e, state, rules, now, scorer_since=since))
        learning.append(rules.learning(state, now))
        observe(e, state)
    Xa = np.array(X)
    s_model = [model_on_scale(detector, float(r), x, new)[0] for r, x, new in zip(detector.score(Xa), Xa, learning)]
    findings = [severity_for(shipped_score(s, h)) is not None for s, h in zip(s_model, hits)]
    fired: dict[str, int] = {}
    for s, h in zip(s_model, hits):
        for name in [x.rule for x in h] + (["isolation-forest"] if severity_for(s) else []):
            fired[name] = fired.get(name, 0) + 1
    return {"events": len(events), "findings": sum(findings),
            "per_1000": 1000 * sum(findings) / max(1, len(events)), **{f"by {k}": v for k, v in fired.items()}}


def findings_of(s_model: np.ndarray, hits: list[list[RuleHit]]) -> list[tuple[int, list[tuple[str, float]], str, float]]:
    """(event index, detectors with their scores, severity, score) of each event the shipped
    detection raises a finding on, in the events' order."""
    out = []
    for i, (m, h) in enumerate(zip(s_model, hits)):
        score = shipped_score(float(m), h)
        severity = severity_for(score)
        if severity is None:
            continue
        detectors = [(x.rule, RULE_SCORE[x.severity]) for x in h] + ([(MODEL, float(m))] if severity_for(float(m)) else [])
        out.append((i, detectors, severity, score))
    return out


def incident_figures(test: list[Labelled], s_model: np.ndarray, hits: list[list[RuleHit]],
                     untargeted: tuple[str, ...] = ()) -> dict[str, float]:
    """The findings grouped into incidents (detectors/incidents.py), as a scorer would page them:
    recall = share of targeted misuse events covered by a paged incident (the identity's records
    from the incident's window_start to its last finding), precision = share of paged incidents
    covering misuse, and paged incidents per 1,000 normal events."""
    events = [e for e, _ in test]
    grouper = Grouper()
    for i, detectors, severity, score in findings_of(s_model, hits):
        e = events[i]
        grouper.add(e["actor"]["id"], detectors, severity, score, event_time(e), str(i))
    paged = [inc for inc in grouper.incidents() if inc.paged]
    by_identity: dict[str, list[Incident]] = {}
    for inc in paged:
        by_identity.setdefault(inc.identity, []).append(inc)
    covering: set[str] = set()
    covered, targeted, normal = 0, 0, 0
    for e, label in test:
        if label == "normal":
            normal += 1
            continue
        t = event_time(e)
        hit = [inc for inc in by_identity.get(e["actor"]["id"], []) if inc.window_start <= t <= inc.last_seen]
        covering.update(inc.uid for inc in hit)
        if label not in untargeted:
            targeted += 1
            covered += bool(hit)
    return {"incidents": len(grouper.incidents()), "paged": len(paged),
            "paged_recall": covered / max(1, targeted),
            "paged_precision": len(covering) / len(paged) if paged else 0.0,
            "paged_per_1000_normal": 1000 * len(paged) / max(1, normal)}


def evaluate_family(name: str, traffic: tuple[list[Event], list[Labelled]], family: Family, scenarios: tuple[str, ...],
                    *, seed: int, budget: float, untargeted: tuple[str, ...] = (),
                    fresh: list[Event] | None = None) -> Report:
    """One family's report. Recall overall counts the misuse of the targeted scenarios; precision
    counts any misuse flagged (an untargeted scenario's event is no false alarm)."""
    train_events, test = traffic
    fx = FeatureExtractor()
    detector = train(np.array([fx(e) for e in train_events]), version=f"eval-{seed}", seed=seed)
    rules = RuleConfig(vendor_max_level=dict(family.max_level))
    X, hits, s_z, s_model = score_test(detector, rules, train_events, test)
    labels = np.array([label for _, label in test])
    s_shipped = np.array([shipped_score(float(s), h) for s, h in zip(s_model, hits)])
    at_threshold = np.array([severity_for(float(s)) is not None for s in s_shipped])
    bad = labels != "normal"
    targeted = bad & ~np.isin(labels, list(untargeted))
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
        "budget": budget, "test_events": len(test), "misuse_events": int(targeted.sum()),
        "recall_shipped": float(flag["shipped"][targeted].mean()), "recall_model": float(flag["model"][targeted].mean()),
        "recall_z": float(flag["z"][targeted].mean()),
        "precision_shipped": float(bad[flag["shipped"]].mean()), "precision_model": float(bad[flag["model"]].mean()),
        "precision_z": float(bad[flag["z"]].mean()),
        "alerts_threshold": int(at_threshold.sum()),
        "precision_threshold": float(bad[at_threshold].mean()) if at_threshold.any() else 0.0,
        "recall_threshold": float(at_threshold[targeted].mean()),
        "pr_auc_shipped": float(average_precision_score(bad, s_shipped)),
        "pr_auc_model": float(average_precision_score(bad, s_model)), "pr_auc_z": float(average_precision_score(bad, s_z)),
    }
    overall.update(incident_figures(test, s_model, hits, untargeted))
    return Report(name, rows, overall, untargeted,
                  fresh_week(detector, rules, fresh) if fresh is not None else None)


def evaluate(seed: int = 7, budget: float = 0.01, *, families: tuple[str, ...] = ("tuning", "held-out"),
             evaluation_seed: int | None = None) -> list[Report]:
    """Reports per family: `tuning` (what detections were tuned on), `held-out` (read while tuning:
    no longer a judge), and `evaluation` (detectors/evalset.py, the fixed set issue 22's detectors
    are judged on; its seed is the recorded one whatever `seed` says, unless `evaluation_seed`
    draws it with another)."""
    from aiaudit.detectors import evalset, heldout, traffic

    evaluation = Family(vendors={v: list(ms) for v, ms in evalset.VENDORS.items()}, max_level=dict(evalset.CEILING),
                        unapproved=evalset.UNLISTED, routes=list(evalset.ROUTES), domain="initech.example",
                        agent_prefix="bot-")
    sources: dict[str, tuple[Callable[[int], Any], Family, tuple[str, ...]]] = {
        "tuning": (traffic.labelled_traffic, traffic.TUNING, traffic.SCENARIOS),
        "held-out": (heldout.heldout_traffic, heldout.HELDOUT, heldout.SCENARIOS),
    }
    reports = []
    for name in families:
        if name == "evaluation":
            train_events, test, fresh = evalset.evaluation_set() if evaluation_seed is None else \
                evalset.evaluation_set(evaluation_seed)
            reports.append(evaluate_family(name, (train_events, test), evaluation, evalset.SCENARIOS + evalset.UNNAMED,
                                           seed=seed, budget=budget, untargeted=evalset.UNNAMED, fresh=fresh))
        else:
            load, family, scenarios = sources[name]
            reports.append(evaluate_family(name, load(seed), family, scenarios, seed=seed, budget=budget))
    return reports


def table(report: Report) -> str:
    o = report.overall
    lines = [f"{report.family} family: {o['test_events']} test events ({o['misuse_events']} misuse"
             f"{' in targeted scenarios' if report.untargeted else ''}), alert budget "
             f"{o['budget']:.1%}; shipped = IsolationForest + rules, model = IsolationForest alone, z = per-identity z-score",
             f"{'scenario':<32} {'events':>6} {'shipped':>7} {'model':>6} {'z':>5} {'at thr.':>7}  detectors that fired"]
    for r in report.rows:
        fired = ", ".join(f"{k} {v}" for k, v in sorted(r.detectors.items(), key=lambda kv: -kv[1])) or "-"
        name = f"{r.scenario} (no target)" if r.scenario in report.untargeted else r.scenario
        lines.append(f"{name:<32} {r.events:>6} {r.recall_shipped:>7.2f} {r.recall_model:>6.2f} {r.recall_z:>5.2f} "
                     f"{r.recall_threshold:>7.2f}  {fired}")
    lines.append(f"{'recall (all misuse)':<32} {o['misuse_events']:>6} {o['recall_shipped']:>7.2f} {o['recall_model']:>6.2f} "
                 f"{o['recall_z']:>5.2f} {o['recall_threshold']:>7.2f}")
    lines.append(f"{'precision at budget':<32} {'':>6} {o['precision_shipped']:>7.2f} {o['precision_model']:>6.2f} "
                 f"{o['precision_z']:>5.2f}")
    lines.append(f"{'PR-AUC':<32} {'':>6} {o['pr_auc_shipped']:>7.2f} {o['pr_auc_model']:>6.2f} {o['pr_auc_z']:>5.2f}")
    lines.append(f"at the default threshold: {o['alerts_threshold']} alerts, precision {o['precision_threshold']:.2f}, "
                 f"recall {o['recall_threshold']:.2f}")
    lines.append(f"incidents: {o['incidents']:.0f}, {o['paged']:.0f} paged ({o['paged_per_1000_normal']:.2f} per 1,000 "
                 f"normal events); paged precision {o['paged_precision']:.2f}, misuse covered by a paged incident "
                 f"{o['paged_recall']:.2f}")
    if report.fresh is not None:
        f = report.fresh
        by = ", ".join(f"{k[3:]} {v:.0f}" for k, v in f.items() if k.startswith("by ")) or "-"
        lines.append(f"a fresh scorer's first week: {f['findings']:.0f} findings on {f['events']:.0f} ordinary events "
                     f"({f['per_1000']:.2f} per 1,000; {by})")
    met = report.meets_targets()
    if report.fresh is not None:
        said = ("recall >= 0.8 at budget, paged precision >= 0.9, at most 1 paged incident per 1,000 normal events, "
                "at most 1 finding per 1,000 events in a fresh week, no scenario below the baseline")
    else:
        said = "recall >= 0.8 at budget, precision >= 0.7 at threshold, no scenario below the baseline"
    lines.append(f"targets ({said}): " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    for rep in evaluate():
        print(table(rep))
        print()
    print(f"features: {', '.join(FEATURES)}")
