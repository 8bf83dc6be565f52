import numpy as np
import pytest

from aiaudit.detectors.evaluate import evaluate
from aiaudit.detectors.features import FEATURES
from aiaudit.detectors.model import DEFAULT_BUDGETS, ArtifactRefused, load, save, train


def data(seed=1, n=2000):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, size=(n, len(FEATURES)))


def test_training_is_seeded_and_thresholds_are_score_quantiles():
    X = data()
    a, b = train(X, version="v1", seed=3), train(X, version="v1", seed=3)
    assert np.array_equal(a.score(X[:50]), b.score(X[:50]))
    share_medium = (a.score(X) >= a.thresholds["medium"]).mean()
    assert 0.5 * DEFAULT_BUDGETS["medium"] <= share_medium <= 2 * DEFAULT_BUDGETS["medium"]  # the budget on training traffic
    assert a.thresholds["critical"] > a.thresholds["high"] > a.thresholds["medium"]


def test_outlier_scores_high_and_is_explained():
    X = data()
    det = train(X, version="v1", seed=3)
    odd = np.zeros(len(FEATURES))
    unusual = ("secret_hits", "prompt_chars_log", "model_rarity", "hour_rarity", "dormancy_log", "injection_markers")
    for i, name in enumerate(unusual):
        odd[FEATURES.index(name)] = 8.0 + i
    score = det.score(odd[None, :])[0]
    assert score > det.thresholds["medium"] > det.score(np.zeros((1, len(FEATURES))))[0]
    assert det.severity(score) is not None and det.severity(0.0) is None
    assert {name for name, _ in det.explain(odd, top=6)} == set(unusual)


def test_artifact_round_trips_and_a_tampered_one_is_refused(tmp_path):
    det = train(data(), version="2026-11-28.1", seed=5, window=("2026-11-01T00:00:00Z", "2026-11-28T00:00:00Z"))
    manifest = save(det, tmp_path)
    assert manifest["features"] == list(FEATURES) and manifest["training"]["window"][0].startswith("2026-11-01")
    back = load(tmp_path, det.version, expected_sha256=manifest["sha256"])
    X = data(9, 20)
    assert np.array_equal(back.score(X), det.score(X))
    path = tmp_path / f"{det.version}.npz"
    blob = bytearray(path.read_bytes())
    blob[-20] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ArtifactRefused, match="not the promoted"):
        load(tmp_path, det.version, expected_sha256=manifest["sha256"])


def test_too_little_training_data_is_refused():
    with pytest.raises(ValueError, match="at least 50 rows"):
        train(data(n=10), version="v", seed=1)


def test_evaluation_on_both_families_meets_the_targets_and_never_trails_the_baseline():
    tuning, held_out = evaluate(seed=7, budget=0.01)
    assert (tuning.family, held_out.family) == ("tuning", "held-out")
    for report in (tuning, held_out):
        o = report.overall
        assert o["pr_auc_shipped"] > o["pr_auc_model"] > o["pr_auc_z"]
        assert all(r.recall_shipped >= r.recall_z for r in report.rows), [(r.scenario, r.recall_shipped, r.recall_z)
                                                                          for r in report.rows]
    o = held_out.overall
    assert o["recall_shipped"] >= 0.8 and o["precision_threshold"] >= 0.7  # the targets, held-out family
    assert held_out.meets_targets() == {"recall_at_budget": True, "precision_at_threshold": True,
                                        "never_below_baseline": True}
    # What the forest alone cannot see, a rule catches, and the finding says which.
    by = {r.scenario: r for r in held_out.rows}
    assert by["vendor_leaks_above_route"].recall_model == 0 and by["vendor_leaks_above_route"].recall_shipped == 1
    assert by["vendor_leaks_above_route"].detectors["response_above_route"] == 6
    assert by["new_hire_credentials"].detectors.get("sensitive_to_unapproved_vendor") == by["new_hire_credentials"].events


def test_scores_equal_scikit_learns_exactly():
    from sklearn.ensemble import IsolationForest

    X = data()
    det = train(X, version="v1", seed=3)
    forest = IsolationForest(n_estimators=200, max_samples=min(len(X), 2048), random_state=3, n_jobs=1).fit(X)
    Y = np.vstack([data(11, 300) * 4, np.zeros((1, len(FEATURES))), np.full((1, len(FEATURES)), 1e6)])
    assert np.array_equal(det.score(Y), -forest.score_samples(Y))


def test_an_artifact_cannot_run_code_and_a_version_cannot_name_a_path(tmp_path):
    """The old pickle format ran code on load; an .npz is read with allow_pickle=False."""
    import hashlib
    import io
    import json
    import pickle

    det = train(data(), version="good", seed=5)
    manifest = save(det, tmp_path)
    # An object array (which would need pickle) under the right hash and manifest: refused, not run.
    evil = io.BytesIO()
    np.savez(evil, median=np.array([object()], dtype=object), iqr=det.iqr)
    blob = evil.getvalue()
    (tmp_path / "good.npz").write_bytes(blob)
    with pytest.raises(ArtifactRefused, match="not a readable artifact"):
        load(tmp_path, "good", expected_sha256=hashlib.sha256(blob).hexdigest(), manifest=manifest)
    # A pickle (format 1) is not loaded at all, even when its hash is the one given.
    old = pickle.dumps({"x": 1})
    (tmp_path / "legacy.npz").write_bytes(old)
    (tmp_path / "legacy.json").write_text(json.dumps({**manifest, "format": 1}))
    with pytest.raises(ArtifactRefused):
        load(tmp_path, "legacy", expected_sha256=hashlib.sha256(old).hexdigest())
    for version in ("../elsewhere/evil", "a/b", "", "x" * 65, ".hidden"):
        with pytest.raises(ArtifactRefused, match="must be 1-64 letters"):
            load(tmp_path, version, expected_sha256="0" * 64)


def test_a_tree_whose_child_points_outside_it_is_refused(tmp_path):
    import hashlib
    import io

    det = train(data(), version="t", seed=5)
    manifest = save(det, tmp_path)
    arrays = dict(np.load(tmp_path / "t.npz", allow_pickle=False))
    arrays["left_0"] = arrays["left_0"].copy()
    arrays["left_0"][0] = 10**9
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (tmp_path / "t.npz").write_bytes(buf.getvalue())
    with pytest.raises(ArtifactRefused, match="outside the tree"):
        load(tmp_path, "t", expected_sha256=hashlib.sha256(buf.getvalue()).hexdigest(), manifest=manifest)
