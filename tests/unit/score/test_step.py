import numpy as np

from detectors.features import FEATURES, FeatureExtractor, state_from_dict, state_to_dict
from detectors.model import train
from pipeline.chain.record import parse_payload
from pipeline.keys import Ed25519Signer
from pipeline.score.ocsf import CLASS_UID, finding_uid
from pipeline.score.step import score_records
from tests.unit.helpers import build_chain


def test_batch_scoring_matches_one_by_one_and_findings_point_at_the_record():
    records = build_chain(400, Ed25519Signer.generate())
    events = [parse_payload(r.payload)["event"] for r in records]
    fx = FeatureExtractor()
    X = np.array([fx(e) for e in events])
    det = train(X, version="m-test", seed=1)
    states: dict = {}
    batch = score_records(records, states, det, detected_at_ms=1)
    assert np.allclose([s.score for s in batch], det.score(X))  # same vectors as one by one
    flagged = [s for s in batch if s.severity]
    assert 0 < len(flagged) <= 0.03 * len(batch)  # about the 1% budget on its own training traffic
    f = flagged[0].finding
    assert f["class_uid"] == CLASS_UID and f["finding_info"]["analytic"]["version"] == "m-test"
    rec = records[flagged[0].seq]
    assert f["unmapped"]["chain"] == {"origin": rec.origin, "seq": rec.seq, "leaf_hash": rec.leaf_hash}
    assert f["metadata"]["uid"] == finding_uid(rec.origin, rec.seq, "m-test")
    assert len(f["unmapped"]["explanation"]) == 3 and f["unmapped"]["explanation"][0]["feature"] in FEATURES


def test_identity_state_survives_a_json_round_trip():
    records = build_chain(60, Ed25519Signer.generate())
    fx = FeatureExtractor()
    for r in records:
        fx(parse_payload(r.payload)["event"])
    for actor, state in fx.states.items():
        import json

        assert state_from_dict(json.loads(json.dumps(state_to_dict(state)))) == state


def test_identity_state_round_trips_through_the_faust_table_changelog_codec():
    """A restarted worker rebuilds its table from the changelog: the table's value codec must turn
    what it wrote back into the state (a `dict` value_type made Faust call dict.from_data and
    recovery hang)."""
    from pipeline.score.app import make_app
    from pipeline.settings import Settings

    app = make_app(Settings(), detector=None)  # type: ignore[arg-type]  # nothing is scored here
    table = app.tables["identity-state"]
    fx = FeatureExtractor()
    for ev in [parse_payload(r.payload)["event"] for r in build_chain(30, Ed25519Signer.generate())]:
        fx(ev)
    actor, state = next(iter(fx.states.items()))
    written = app.serializers.dumps_value(table.value_type, state_to_dict(state), serializer=table.value_serializer)
    read = app.serializers.loads_value(table.value_type, written, serializer=table.value_serializer)
    assert state_from_dict(read) == state and actor
