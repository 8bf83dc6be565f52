"""The scoring step (pure): a batch of chain records -> scores, severities, OCSF findings.

Records of one identity are taken in order: features read the identity's state, then the
event is added to it, so the batch gives the same vectors as one-by-one scoring. The model
scores the whole batch at once (one IsolationForest call per batch, not per event).
"""

from __future__ import annotations

from collections import deque
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiaudit.detectors.features import IdentityState, event_time, extract, observe
from aiaudit.detectors.incidents import MODEL
from aiaudit.detectors.model import Scorer, model_on_scale
from aiaudit.detectors.rules import RuleConfig, check
from aiaudit.detectors.severity import RULE_SCORE, finding_score, severity_for
from aiaudit.pipeline.chain.record import Record, parse_payload
from aiaudit.pipeline.score.ocsf import detection_finding


@dataclass(frozen=True)
class Scored:
    origin: str
    seq: int
    leaf_hash: str
    actor_id: str
    ts: str
    score: float
    severity: str | None
    model_version: str
    finding: dict[str, Any] | None
    at: float = 0.0  # the event's own time (epoch seconds)
    detectors: tuple[tuple[str, float], ...] = ()  # what fired on it, each with its score on the one scale

    def row(self) -> dict[str, Any]:
        return {"origin": self.origin, "seq": self.seq, "leaf_hash": self.leaf_hash, "actor_id": self.actor_id,
                "ts": self.ts, "score": round(self.score, 6), "severity": self.severity or "",
                "model_version": self.model_version}


DEFAULT_RULES = RuleConfig()  # without a policy: secrets sent, injection, denial bursts
SCORES_PER_MESSAGE = 1000  # score rows per scores-topic message (~200 bytes a row: well under 1 MB)


class BatchStates(dict[str, IdentityState]):
    """One batch's view of the held identity states: a state is copied the first time the batch
    reads it, and the held states are left untouched, so an aborted batch changes nothing."""

    def __init__(self, held: MutableMapping[str, IdentityState]) -> None:
        super().__init__()
        self._held = held

    def get(self, actor: str, default: IdentityState | None = None) -> IdentityState | None:  # type: ignore[override]  # a miss copies the held state
        if actor not in self:
            held = self._held.get(actor)
            if held is None:
                return default
            self[actor] = copy_state(held)
        return self[actor]

    def changed(self) -> dict[str, IdentityState]:
        """The states this batch read or wrote (every one the step touched)."""
        return dict(self)


def copy_state(state: IdentityState) -> IdentityState:
    return IdentityState(deque(state.last_hour), deque(state.denials), dict(state.vendors), dict(state.models),
                         list(state.hours), list(state.levels), state.seen, dict(state.routes), list(state.weekdays),
                         state.active_hours, state.last_seen, state.gap_before_run, state.denied_total,
                         state.prompt_log_sum, state.response_log_sum, state.first_seen, state.days_active,
                         state.day_count, dict(state.vendor_since), dict(state.incidents))


def _parsed(records: Sequence[Record], skip_unreadable: bool) -> tuple[list[Record], list[dict[str, Any]]]:
    if not skip_unreadable:
        return list(records), [parse_payload(r.payload) for r in records]
    kept, parsed = [], []
    for r in records:
        try:
            obj = parse_payload(r.payload)
            event = obj["event"]
            event["actor"]["id"], event["occurred_at"]  # noqa: B018  # what every feature needs
        except (ValueError, KeyError, TypeError):
            continue
        kept.append(r)
        parsed.append(obj)
    return kept, parsed


def score_records(records: Sequence[Record], states: MutableMapping[str, IdentityState], detector: Scorer,
                  *, detected_at_ms: int, skip_unreadable: bool = False, rules: RuleConfig | None = None,
                  scorer_since: float | None = None) -> list[Scored]:
    """Score `records` (time order per identity), updating `states` in place: the model's score and
    the rule detectors (`rules`; default: those that need no policy), both reading the identity's
    state before the event. One finding per record that the model or a rule flags, naming each
    detector that fired. With skip_unreadable, a record whose payload is not a v1 record with an
    actor and a time is left out (not scored). `scorer_since`: when the scorer's state begins
    (rules.check); None for a scorer that has just started."""
    if not records:
        return []
    records, parsed = _parsed(records, skip_unreadable)
    if not records:
        return []
    rules = rules or DEFAULT_RULES
    vectors, hits, learning, times = [], [], [], []
    for obj in parsed:
        event = obj["event"]
        actor = event["actor"]["id"]
        state = states.get(actor) or IdentityState()
        vector = extract(event, state)
        vectors.append(vector)
        now = event_time(event)
        times.append(now)
        hits.append(check(event, state, rules, now, scorer_since=scorer_since))
        learning.append(rules.learning(state, now))
        observe(event, state)
        states[actor] = state
    X = np.array(vectors)
    scores = detector.score(X)
    out = []
    for rec, obj, x, raw, rule_hits, new, at in zip(records, parsed, X, scores, hits, learning, times):
        # One scale for every detector (detectors/severity.py): the severity follows from the score.
        on_scale, explanation = model_on_scale(detector, float(raw), x, new)
        model_severity = severity_for(on_scale)
        score = finding_score(on_scale, [h.severity for h in rule_hits])
        severity = severity_for(score)
        finding = None
        fired: tuple[tuple[str, float], ...] = ()
        if severity is not None:
            # rules first (a rule names the family when it ties with the model), as the evaluation groups them
            fired = tuple((h.rule, RULE_SCORE[h.severity]) for h in rule_hits) + \
                tuple([(MODEL, on_scale)] if model_severity else [])
            finding = detection_finding(origin=rec.origin, seq=rec.seq, leaf_hash=rec.leaf_hash, event=obj["event"],
                                        score=score, severity=severity, model_severity=model_severity,
                                        explanation=explanation,
                                        rule_hits=rule_hits, model_version=detector.version,
                                        detected_at_ms=detected_at_ms, model_score=float(raw),
                                        rules_version=rules.version)
        out.append(Scored(rec.origin, rec.seq, rec.leaf_hash, obj["event"]["actor"]["id"], obj["ts"], score,
                          severity, detector.version, finding, at, fired))
    return out
