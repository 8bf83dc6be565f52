import math
import subprocess
import sys

from detectors.features import FEATURES, WARMUP, FeatureExtractor, IdentityState, extract, observe


def ev(t: str, *, vendor="openai", model="gpt-4o", level="internal", decision="allow", **cf):
    features = {"prompt_chars": 1000, "response_chars": 2000, "prompt_entropy_milli": 4200, "prompt_pii_hits": 0,
                "prompt_secret_hits": 0, "response_pii_hits": 0, "response_secret_hits": 0, "injection_markers": 0,
                "url_count": 0, "encoded_blob_count": 0, **cf}
    return {"occurred_at": t, "actor": {"id": "alice@acme.example"}, "gen_ai_provider_name": vendor,
            "gen_ai_request_model": model, "prompt_classification": {"level": level}, "decision": decision,
            "gen_ai_usage_input_tokens": 250, "gen_ai_usage_output_tokens": 500, "latency_us": 999_000,
            "content_features": features}


def named(vector):
    assert len(vector) == len(FEATURES)
    return dict(zip(FEATURES, vector))


def test_content_features():
    f = named(extract(ev("2026-11-28T10:00:00.000000Z", prompt_secret_hits=2, response_secret_hits=1, url_count=2,
                         encoded_blob_count=1, injection_markers=3, prompt_pii_hits=1), IdentityState()))
    assert f["prompt_chars_log"] == math.log1p(1000) and f["response_to_prompt_log"] == math.log(2001 / 1001)
    assert f["secret_hits"] == 3 and f["pii_hits"] == 1 and f["url_and_blob_count"] == 3 and f["injection_markers"] == 3
    assert f["prompt_entropy"] == 4.2 and f["tokens_log"] == math.log1p(750) and f["latency_log"] == math.log1p(999)


def test_rates_and_denials_use_the_events_own_time():
    state = IdentityState()
    for s in range(0, 50, 10):
        observe(ev(f"2026-11-28T10:00:{s:02d}.000000Z", decision="deny"), state)
    f = named(extract(ev("2026-11-28T10:00:55.000000Z"), state))
    assert f["rate_1m"] == 5 and f["rate_1h_log"] == math.log1p(5) and f["recent_denials"] == 5
    later = named(extract(ev("2026-11-28T12:00:00.000000Z"), state))
    assert later["rate_1m"] == 0  # the window is the event's time, not a clock


def test_behaviour_novelty_after_warmup():
    fx = FeatureExtractor()
    for i in range(WARMUP + 5):
        fx(ev(f"2026-11-28T10:{i:02d}:00.000000Z", level="internal"))
    usual = named(fx(ev("2026-11-28T10:59:00.000000Z")))
    odd = named(fx(ev("2026-11-28T03:00:00.000000Z", vendor="deepseek", model="deepseek-chat", level="restricted")))
    assert odd["vendor_rarity"] > usual["vendor_rarity"] + 2 and odd["model_rarity"] > usual["model_rarity"] + 2
    assert odd["hour_rarity"] > usual["hour_rarity"] + 2
    assert odd["level_above_usual"] == 2 and usual["level_above_usual"] == 0


def test_cold_identity_has_no_novelty_yet():
    f = named(FeatureExtractor()(ev("2026-11-28T03:00:00.000000Z", vendor="deepseek", level="restricted")))
    assert f["vendor_rarity"] == f["hour_rarity"] == f["level_above_usual"] == 0


def test_detectors_import_no_kafka_faust_or_clickhouse():
    code = ("import sys, detectors.features, detectors.model, detectors.traffic, detectors.evaluate; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('confluent_kafka', 'faust', 'aiokafka', "
            "'clickhouse_connect', 'chdb', 'pipeline')]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
