import json
import re

import pytest

from aiaudit.detectors.model import ArtifactRefused
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.score.models import events_from_export, live_detector, promote, train_from
from tests.unit.helpers import build_chain, keyring_of

OPERATOR = Ed25519Signer.generate()
RING = keyring_of(OPERATOR)


def test_train_from_an_export_then_promote_and_refuse_a_swapped_artifact(tmp_path):
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(r.to_json()) + "\n" for r in build_chain(300, Ed25519Signer.generate())))
    models = tmp_path / "models"
    manifest = train_from(events_from_export(export), version="m1", seed=1, models_dir=models)
    assert manifest["training"]["rows"] == 300 and manifest["training"]["window"][0] < manifest["training"]["window"][1]
    assert promote(models, "m1", OPERATOR, by="ops-1")["sha256"] == manifest["sha256"]
    assert live_detector(models, RING).version == "m1"
    # Another model's bytes put in place of m1's: promotion and loading refuse them.
    train_from(events_from_export(export), version="m2", seed=2, models_dir=models)
    (models / "m1.npz").write_bytes((models / "m2.npz").read_bytes())
    with pytest.raises(ArtifactRefused):
        promote(models, "m1", OPERATOR, by="ops-1")
    with pytest.raises(ArtifactRefused):
        live_detector(models, RING)


def test_too_few_events_is_a_clear_error(tmp_path):
    export = tmp_path / "small.jsonl"
    export.write_text("".join(json.dumps(r.to_json()) + "\n" for r in build_chain(5, Ed25519Signer.generate())))
    with pytest.raises(ConfigError, match="at least 50 events"):
        train_from(events_from_export(export), version="x", seed=1, models_dir=tmp_path)


def test_a_live_json_naming_a_path_is_refused(tmp_path):
    (tmp_path / "live.json").write_text(json.dumps({"version": "../elsewhere/evil", "sha256": "0" * 64}))
    with pytest.raises(ConfigError, match="not a signed promotion"):  # an unsigned live.json is not trusted at all
        live_detector(tmp_path, RING)
    with pytest.raises(ArtifactRefused):
        promote(tmp_path, "../elsewhere/evil", OPERATOR, by="ops-1")


def test_trained_models_are_listed_newest_first_with_the_live_one_marked(tmp_path):
    import os

    from aiaudit.pipeline.score.models import trained_models

    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(r.to_json()) + "\n" for r in build_chain(120, Ed25519Signer.generate())))
    models = tmp_path / "models"
    for i, version in enumerate(("older", "newer")):
        train_from(events_from_export(export), version=version, seed=i, models_dir=models)
        os.utime(models / f"{version}.json", (1_800_000_000 + i * 60, 1_800_000_000 + i * 60))
    promote(models, "older", OPERATOR, by="ops-1")
    listed = trained_models(models)
    assert [(m["version"], m["live"], m["rows"]) for m in listed] == [("newer", False, 120), ("older", True, 120)]
    with pytest.raises(ArtifactRefused, match="must be 1-64 letters"):
        train_from(iter(()), version="../x", seed=1, models_dir=models)


def test_only_a_promotion_signed_with_an_operators_key_is_live(tmp_path):
    """Whoever can write the models folder but not the keys cannot make a model of theirs live."""
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(r.to_json()) + "\n" for r in build_chain(120, Ed25519Signer.generate())))
    models = tmp_path / "models"
    train_from(events_from_export(export), version="good", seed=1, models_dir=models)
    evil = train_from(events_from_export(export), version="evil", seed=2, models_dir=models)
    promote(models, "good", OPERATOR, by="ops-1")
    live = json.loads((models / "live.json").read_text())
    assert live["promoted_by"] == "ops-1" and live["kid"] == OPERATOR.kid and live_detector(models, RING).version == "good"
    # The folder's writer points live.json at their model, keeping the old signature: refused.
    (models / "live.json").write_text(json.dumps({**live, "manifest": evil}))
    with pytest.raises(ConfigError, match="signature does not verify"):
        live_detector(models, RING)
    # ... or signs it with a key of their own: refused too (not in the operator's JWKS).
    promote(models, "evil", Ed25519Signer.generate(), by="mallory")
    with pytest.raises(ConfigError, match="signature does not verify"):
        live_detector(models, RING)
    with pytest.raises(ConfigError, match="--by"):
        promote(models, "good", OPERATOR, by=" ")


def test_the_scorers_policy_file_gives_the_rules_vendor_levels_and_bad_files_are_named(tmp_path):
    from aiaudit.pipeline.score.models import MAX_POLICY_BYTES, rule_config
    from aiaudit.pipeline.settings import ScoreSettings, Settings

    def with_file(path):
        return Settings(score=ScoreSettings(policy_file=path))

    assert rule_config(Settings()).vendor_max_level is None  # no file: the vendor rules are off
    good = tmp_path / "policy.yaml"
    good.write_text("version: 2026.11.0\nvendors:\n  openai: {max_level: confidential}\n  local-llm: {}\n")
    assert rule_config(with_file(good)).vendor_max_level == {"openai": "confidential", "local-llm": "internal"}
    cases = {"missing.yaml": None, "list.yaml": "- a\n- b\n", "novendors.yaml": "routes: {}\n",
             "badlevel.yaml": "vendors: {openai: {max_level: top-secret}}\n", "notyaml.yaml": "vendors: [unclosed\n",
             "huge.yaml": "#" * (MAX_POLICY_BYTES + 1)}
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(ConfigError, match=rf"AIAUDIT_SCORE__POLICY_FILE {re.escape(str(path))}"):
            rule_config(with_file(path))


def test_a_scorer_without_a_promoted_model_scores_with_the_rules_only_and_takes_one_up_when_promoted(tmp_path, caplog):
    import logging

    import numpy as np

    from aiaudit.pipeline.score.models import RULES_ONLY, LiveModel
    from aiaudit.pipeline.score.step import score_records

    models = tmp_path / "models"
    records = build_chain(300, Ed25519Signer.generate())
    with caplog.at_level(logging.WARNING, logger="aiaudit.score"):
        live = LiveModel(models, RING, check_every_s=0)
    assert live() is None and live.detector is RULES_ONLY
    assert "scoring with the rules only" in caplog.text  # it says so
    assert not RULES_ONLY.score(np.zeros((3, 25))).any() and RULES_ONLY.explain(np.zeros(25)) == []
    scored = score_records(records, {}, RULES_ONLY, detected_at_ms=1)
    assert all(s.model_version == "rules-only" for s in scored)
    assert all(d["detector"] != "isolation-forest" for s in scored if s.finding for d in s.finding["unmapped"]["detections"])

    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    train_from(events_from_export(export), version="m1", seed=1, models_dir=models)
    promote(models, "m1", OPERATOR, by="ops-1")
    promoted = live()
    assert promoted is not None and live.detector.version == "m1"  # no restart
    # A live.json that does not verify is refused at start, as before: a promoted model is never skipped.
    (models / "live.json").write_text("{}")
    with pytest.raises(ConfigError):
        LiveModel(models, RING)
