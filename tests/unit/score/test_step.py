import numpy as np

from aiaudit.detectors.features import FEATURES, FeatureExtractor, state_from_dict, state_to_dict
from aiaudit.detectors.model import model_on_scale, train
from aiaudit.detectors.rules import RuleConfig
from aiaudit.detectors.severity import model_score, severity_for
from aiaudit.pipeline.chain.record import parse_payload
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.score.ocsf import CLASS_UID, finding_uid
from aiaudit.pipeline.score.step import score_records
from tests.unit.helpers import build_chain


def trained_on_a_chain(n: int = 400):
    """(records of a chain, their feature vectors one by one, a model trained on them)."""
    records = build_chain(n, Ed25519Signer.generate())
    fx = FeatureExtractor()
    X = np.array([fx(parse_payload(r.payload)["event"]) for r in records])
    return records, X, train(X, version="m-test", seed=1)


def test_batch_scoring_matches_one_by_one_and_findings_point_at_the_record():
    records, X, det = trained_on_a_chain(600)  # enough for the model to flag one past its identity's first request
    states: dict = {}
    no_learning = RuleConfig(learning_days=0)  # these identities are minutes old: past learning only by setting
    batch = score_records(records, states, det, detected_at_ms=1, rules=no_learning)
    # Same vectors as one by one; every score on the one scale (detectors/severity.py): the model's
    # where no rule fired (none for latency or a low rate alone), never below it where one did,
    # and the severity is the score's.
    # (an identity's very first request is in its learning period even with learning_days 0: nothing
    # is known of it yet, so the model's score there is 0)
    seen: set[str] = set()
    first = []
    for s in batch:
        first.append(s.actor_id not in seen)
        seen.add(s.actor_id)
    on_scale = [model_on_scale(det, float(raw), x, new)[0] for raw, x, new in zip(det.score(X), X, first)]
    ruled = [bool(s.finding) and any(d["detector"] != "isolation-forest" for d in s.finding["unmapped"]["detections"])
             for s in batch]
    assert np.allclose([s.score for s, r in zip(batch, ruled) if not r], [m for m, r in zip(on_scale, ruled) if not r])
    assert all(s.score >= m - 1e-12 and s.severity == severity_for(s.score) for s, m in zip(batch, on_scale))
    by_model = [s for s, m in zip(batch, on_scale) if severity_for(m)]
    assert 0 < len(by_model) <= 0.01 * len(batch)  # about the model's budget on its own training traffic
    assert all(s.finding is not None for s in by_model)
    flagged = by_model
    f = flagged[0].finding
    assert f["unmapped"]["detections"][0]["detector"] == "isolation-forest"
    assert f["class_uid"] == CLASS_UID and f["finding_info"]["analytic"]["version"] == "m-test"
    rec = records[flagged[0].seq]
    assert f["unmapped"]["chain"] == {"origin": rec.origin, "seq": rec.seq, "leaf_hash": rec.leaf_hash}
    assert f["metadata"]["uid"] == finding_uid(rec.origin, rec.seq, "m-test")
    assert len(f["unmapped"]["explanation"]) == 3 and f["unmapped"]["explanation"][0]["feature"] in FEATURES


def test_no_model_finding_in_an_identitys_learning_period_or_for_latency_or_a_low_rate_alone():
    records, X, det = trained_on_a_chain()
    raw = det.score(X)
    flagged = [i for i, r in enumerate(raw) if severity_for(model_score(float(r), det.thresholds))]
    assert flagged
    # Every identity here is minutes old: in its learning period (7 days by default) the model is silent.
    batch = score_records(records, {}, det, detected_at_ms=1)
    assert not any(d["detector"] == "isolation-forest" for s in batch if s.finding
                   for d in s.finding["unmapped"]["detections"])
    # Past it, a score whose furthest features are latency or a rate below the usual is no finding.
    i = flagged[0]
    latency = FEATURES.index("latency_log")
    x = det.median.copy()
    x[latency] = det.median[latency] + 1e6 * det.iqr[latency]
    assert det.explain(x)[0][0] == "latency_log"
    assert model_on_scale(det, 0.99, x, False) == (0.0, [])
    low_rate = det.median.copy()
    low_rate[FEATURES.index("rate_1h_vs_usual")] -= 1e6 * det.iqr[FEATURES.index("rate_1h_vs_usual")]
    assert model_on_scale(det, 0.99, low_rate, False) == (0.0, [])
    assert model_on_scale(det, 0.99, X[i], True) == (0.0, [])  # learning
    on_scale, why = model_on_scale(det, 0.99, X[i], False)
    assert on_scale == model_score(0.99, det.thresholds) and why == det.explain(X[i])


def test_identity_state_survives_a_json_round_trip():
    records = build_chain(60, Ed25519Signer.generate())
    fx = FeatureExtractor()
    for r in records:
        fx(parse_payload(r.payload)["event"])
    for actor, state in fx.states.items():
        import json

        assert state_from_dict(json.loads(json.dumps(state_to_dict(state)))) == state


def test_a_batch_changes_the_held_states_only_when_its_changes_are_taken():
    """The scoring worker scores a batch against BatchStates: if its transaction aborts, the held
    states are as before the batch; if it commits, they are what plain in-place scoring gives."""
    from aiaudit.pipeline.score.step import BatchStates

    records = build_chain(300, Ed25519Signer.generate())
    fx = FeatureExtractor()
    det = train(np.array([fx(parse_payload(r.payload)["event"]) for r in records]), version="m", seed=2)
    plain: dict = {}
    expected = [s.score for s in score_records(records, plain, det, detected_at_ms=0)]
    held: dict = {}
    first = BatchStates(held)
    got = [s.score for s in score_records(records[:150], first, det, detected_at_ms=0)]
    before = {a: state_to_dict(s) for a, s in held.items()}
    aborted = BatchStates(held)
    score_records(records[150:], aborted, det, detected_at_ms=0)  # thrown away, as after an abort
    assert before == {} and held == {}  # nothing held changed
    held.update(first.changed())
    snapshot = {a: state_to_dict(s) for a, s in held.items()}
    second = BatchStates(held)
    got += [s.score for s in score_records(records[150:], second, det, detected_at_ms=0)]
    assert {a: state_to_dict(s) for a, s in held.items()} == snapshot  # still untouched until taken
    held.update(second.changed())
    assert got == expected
    assert {a: state_to_dict(s) for a, s in held.items()} == {a: state_to_dict(s) for a, s in plain.items()}


def test_unreadable_records_are_left_out_when_asked_and_the_rest_scored():
    import dataclasses

    records = build_chain(60, Ed25519Signer.generate())
    fx = FeatureExtractor()
    det = train(np.array([fx(parse_payload(r.payload)["event"]) for r in records]), version="m", seed=3)
    broken = [dataclasses.replace(records[3], payload=b"not json"), *records[4:]]
    scored = score_records(broken, {}, det, detected_at_ms=0, skip_unreadable=True)
    assert [s.seq for s in scored] == [r.seq for r in records[4:]]
