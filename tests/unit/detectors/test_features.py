import math
import subprocess
import sys

import pytest

from aiaudit.detectors.features import FEATURES, WARMUP, FeatureExtractor, IdentityState, extract, observe


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
    # Five requests in one clock hour so far: the usual rate is 5 an hour (1/12 a minute).
    assert f["rate_1m_vs_usual"] == math.log(6 / (5 / 60 + 1)) and f["rate_1h_vs_usual"] == math.log(6 / 6)
    assert f["recent_denials"] == 5
    later = named(extract(ev("2026-11-28T12:00:00.000000Z"), state))
    assert later["rate_1m_vs_usual"] < 0  # the window is the event's time, not a clock: nothing in the last minute


def test_a_burst_is_large_for_a_person_and_ordinary_for_a_busy_agent():
    person, agent = IdentityState(), IdentityState()
    for day in range(1, 6):  # a person: 3 requests a day; an agent: 10 a minute, for five days
        for i in range(3):
            observe(ev(f"2026-11-{day:02d}T1{i}:00:00.000000Z"), person)
        for h in range(24):
            for m in range(60):
                for s in range(0, 60, 6):
                    observe(ev(f"2026-11-{day:02d}T{h:02d}:{m:02d}:{s:02d}.000000Z"), agent)
    burst = ev("2026-11-06T10:00:30.000000Z")
    for state in (person, agent):
        for s in range(0, 30, 3):
            observe(ev(f"2026-11-06T10:00:{s:02d}.000000Z"), state)
    p, a = named(extract(burst, person)), named(extract(burst, agent))
    assert p["rate_1m_vs_usual"] > 2.0 and abs(a["rate_1m_vs_usual"]) < 0.1  # ten in a minute: odd for her, not for it


def test_calendar_dormancy_route_and_response_features():
    fx = FeatureExtractor()
    for week in range(2):  # weekdays only, 9:00-9:10, route chat
        for day in range(2 + 7 * week, 7 + 7 * week):
            for m in range(0, 10, 2):
                fx(ev(f"2026-11-{day:02d}T09:{m:02d}:00.000000Z") | {"route": "chat"})
    monday = named(fx(ev("2026-11-16T09:00:00.000000Z") | {"route": "chat"}))
    saturday = named(fx(ev("2026-11-21T09:00:00.000000Z") | {"route": "hr-bot"}))
    assert saturday["weekday_rarity"] > monday["weekday_rarity"] + 2 and saturday["route_rarity"] > monday["route_rarity"] + 2
    assert monday["dormancy_log"] == pytest.approx(math.log1p(3 * 24 - 8 / 60))  # since Friday 9:08
    assert saturday["dormancy_log"] == math.log1p(5 * 24)  # five days since Monday 9:00
    leak = named(fx(ev("2026-11-21T09:05:00.000000Z", level="internal") |
                    {"response_classification": {"level": "restricted", "categories": []}}))
    assert leak["response_level"] == 3 and leak["response_above_prompt"] == 2
    assert leak["history_log"] == math.log1p(52) and named(FeatureExtractor()(ev("2026-11-21T09:05:00.000000Z")))["history_log"] == 0


def test_state_is_bounded_and_older_states_still_read():
    from aiaudit.detectors.features import MAX_KEYS, OTHER, state_from_dict, state_to_dict

    state = IdentityState()
    for i in range(MAX_KEYS + 40):
        observe(ev(f"2026-11-28T10:{i % 60:02d}:00.000000Z", model=f"model-{i}"), state)
    assert len(state.models) == MAX_KEYS + 1 and state.models[OTHER] == 40
    old = {k: v for k, v in state_to_dict(state).items() if k not in ("routes", "weekdays", "active_hours", "last_seen")}
    restored = state_from_dict(old)
    assert restored.seen == state.seen and restored.routes == {} and restored.last_seen == state.last_hour[-1]
    assert state_from_dict(state_to_dict(state)) == state


def test_behaviour_novelty_after_warmup():
    fx = FeatureExtractor()
    for i in range(WARMUP + 5):
        fx(ev(f"2026-11-28T10:{i:02d}:00.000000Z", level="internal"))
    usual = named(fx(ev("2026-11-28T10:59:00.000000Z")))
    odd = named(fx(ev("2026-11-28T03:00:00.000000Z", vendor="deepseek", model="deepseek-chat", level="restricted")))
    assert odd["model_rarity"] > usual["model_rarity"] + 2
    assert odd["hour_rarity"] > usual["hour_rarity"] + 2
    assert odd["level_above_usual"] == 2 and usual["level_above_usual"] == 0


def test_cold_identity_has_no_novelty_yet():
    f = named(FeatureExtractor()(ev("2026-11-28T03:00:00.000000Z", vendor="deepseek", level="restricted")))
    assert f["model_rarity"] == f["hour_rarity"] == f["level_above_usual"] == 0


def test_detectors_import_no_kafka_faust_or_clickhouse():
    code = ("import sys, aiaudit.detectors.features, aiaudit.detectors.model, aiaudit.detectors.traffic, aiaudit.detectors.evaluate; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('confluent_kafka', 'faust', 'aiokafka', "
            "'clickhouse_connect', 'chdb') or m.startswith('aiaudit.pipeline')]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
