"""The scoring step (pure): a batch of chain records -> scores, severities, OCSF findings.

Records of one identity are taken in order: features read the identity's state, then the
event is added to it, so the batch gives the same vectors as one-by-one scoring. The model
scores the whole batch at once (one IsolationForest call per batch, not per event).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.features import IdentityState, extract, observe
from detectors.model import Detector
from pipeline.chain.record import Record, parse_payload
from pipeline.score.ocsf import detection_finding


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

    def row(self) -> dict[str, Any]:
        return {"origin": self.origin, "seq": self.seq, "leaf_hash": self.leaf_hash, "actor_id": self.actor_id,
                "ts": self.ts, "score": round(self.score, 6), "severity": self.severity or "",
                "model_version": self.model_version}


def score_records(records: Sequence[Record], states: MutableMapping[str, IdentityState], detector: Detector,
                  *, detected_at_ms: int) -> list[Scored]:
    """Score `records` (time order per identity), updating `states` in place."""
    if not records:
        return []
    parsed = [parse_payload(r.payload) for r in records]
    vectors = []
    for obj in parsed:
        event = obj["event"]
        actor = event["actor"]["id"]
        state = states.get(actor) or IdentityState()
        vectors.append(extract(event, state))
        observe(event, state)
        states[actor] = state
    X = np.array(vectors)
    scores = detector.score(X)
    out = []
    for rec, obj, x, score in zip(records, parsed, X, scores):
        severity = detector.severity(float(score))
        finding = None
        if severity is not None:
            finding = detection_finding(origin=rec.origin, seq=rec.seq, leaf_hash=rec.leaf_hash, event=obj["event"],
                                        score=float(score), severity=severity, explanation=detector.explain(x),
                                        model_version=detector.version, detected_at_ms=detected_at_ms)
        out.append(Scored(rec.origin, rec.seq, rec.leaf_hash, obj["event"]["actor"]["id"], obj["ts"], float(score),
                          severity, detector.version, finding))
    return out
