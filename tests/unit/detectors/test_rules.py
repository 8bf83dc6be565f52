"""Rule detectors (pure): each fires on its pattern, stays quiet on the normal case beside it,
and says why; policy-derived configuration refuses hostile shapes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from aiaudit.detectors.features import IdentityState, event_time, observe, state_from_dict, state_to_dict
from aiaudit.detectors.rules import RuleConfig, check, config_from_policy, severity_of

POLICY = RuleConfig(vendor_max_level={"openai": "confidential", "azure.ai.openai": "restricted", "mistral_ai": "internal"})
T0 = datetime(2026, 11, 16, 10, 0, tzinfo=timezone.utc)  # a Monday


def ev(at: datetime, *, vendor="openai", level="internal", decision="allow", response=None, kind="workforce", **cf):
    features = {"prompt_chars": 800, "response_chars": 1500, "prompt_secret_hits": 0, "response_secret_hits": 0,
                "injection_markers": 0, "encoded_blob_count": 0, "url_count": 0, **cf}
    return {"occurred_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "actor": {"id": "alice@acme.example", "type": kind},
            "route": "chat", "gen_ai_provider_name": vendor, "gen_ai_request_model": "m",
            "prompt_classification": {"level": level, "categories": []},
            "response_classification": {"level": response, "categories": []} if response else None,
            "decision": decision, "content_features": features}


def rules_of(event, state=None, config=POLICY):
    return [h.rule for h in check(event, state or IdentityState(), config, event_time(event))]


def history(days=10, per_day=6, start=T0 - timedelta(days=14), **kw):
    """A weekday person's habits: `per_day` requests at 10:00-10:50 on weekdays."""
    state = IdentityState()
    for d in range(days):
        day = start + timedelta(days=d)
        if day.weekday() < 5:
            for i in range(per_day):
                observe(ev(day.replace(hour=10, minute=10 * i % 60), **kw), state)
    return state


def test_sensitive_data_and_secrets_to_a_vendor_not_approved_for_them():
    assert rules_of(ev(T0, vendor="mistral_ai", level="confidential")) == ["sensitive_to_unapproved_vendor"]
    assert rules_of(ev(T0, vendor="openai", level="confidential")) == []  # allowed up to confidential
    assert rules_of(ev(T0, vendor="openai", prompt_secret_hits=1)) == ["sensitive_to_unapproved_vendor"]
    assert rules_of(ev(T0, vendor="azure.ai.openai", level="restricted", prompt_secret_hits=1)) == []
    assert rules_of(ev(T0, vendor="deepseek", level="internal")) == ["sensitive_to_unapproved_vendor"]  # unlisted: public
    assert rules_of(ev(T0, vendor="mistral_ai", level="restricted", decision="deny")) == []  # the gateway stopped it
    (hit,) = check(ev(T0, vendor="openai", prompt_secret_hits=2), IdentityState(), POLICY, event_time(ev(T0)))
    assert hit.severity == "critical" and "2 secret(s)" in hit.reason and "openai" in hit.reason


def test_without_a_policy_the_vendor_rules_are_off_and_secrets_are_flagged_anywhere():
    bare = RuleConfig()
    assert rules_of(ev(T0, vendor="mistral_ai", level="restricted"), config=bare) == []
    assert rules_of(ev(T0, vendor="azure.ai.openai", prompt_secret_hits=1), config=bare) == ["secrets_sent"]


def test_response_above_the_routes_level():
    assert rules_of(ev(T0, vendor="mistral_ai", response="confidential")) == ["response_above_route"]
    assert rules_of(ev(T0, vendor="mistral_ai", response="internal")) == []


def test_injection_one_strong_marker_three_weak_or_any_with_an_encoded_blob():
    assert rules_of(ev(T0, injection_markers=3)) == ["prompt_injection"]  # one strong marker, or three weak
    assert rules_of(ev(T0, injection_markers=1, encoded_blob_count=1)) == ["prompt_injection"]
    assert rules_of(ev(T0, injection_markers=1)) == []  # a quoted article, a security test
    assert rules_of(ev(T0, injection_markers=2)) == []  # two quoted phrases: a training exercise as often as not


def test_denial_burst_is_measured_against_the_identitys_usual_denials():
    person = history()
    for i in range(4):
        observe(ev(T0 + timedelta(seconds=30 * i), vendor="mistral_ai", level="confidential", decision="deny"), person)
    fifth = ev(T0 + timedelta(seconds=150), vendor="mistral_ai", level="confidential", decision="deny")
    assert "denial_burst" in rules_of(fifth, person)
    # An agent its policy denies a third of the time, 60 an hour: five in ten minutes is its normal.
    agent = IdentityState()
    for m in range(60 * 24 * 3):
        at = T0 - timedelta(days=3) + timedelta(minutes=m)
        observe(ev(at, decision="deny" if m % 3 == 0 else "allow", kind="agent"), agent)
    assert "denial_burst" not in rules_of(ev(T0 + timedelta(seconds=20), decision="deny", kind="agent"), agent)


def test_request_burst_dormant_waking_size_and_odd_hours():
    person = history()
    for i in range(9):
        observe(ev(T0 + timedelta(seconds=5 * i)), person)
    assert "request_burst" in rules_of(ev(T0 + timedelta(seconds=50)), person)
    assert "request_burst" not in rules_of(ev(T0 + timedelta(seconds=50)), history())

    sleeper = history(days=5, start=T0 - timedelta(days=30))
    for i in range(19):  # it usually sends 6 within its hour: waking, it sends 20
        observe(ev(T0 + timedelta(minutes=2 * i)), sleeper)
    wake = ev(T0 + timedelta(minutes=39))
    (hit,) = [h for h in check(wake, sleeper, POLICY, event_time(wake)) if h.rule == "dormant_identity_burst"]
    assert "days of silence" in hit.reason and hit.severity == "medium"  # a busy hour's pace: back from leave
    thief = history(days=5, start=T0 - timedelta(days=30))
    for i in range(39):  # waking at four times its usual pace: someone else's use of the account
        observe(ev(T0 + timedelta(seconds=90 * i)), thief)
    wake = ev(T0 + timedelta(minutes=59))
    (hit,) = [h for h in check(wake, thief, POLICY, event_time(wake)) if h.rule == "dormant_identity_burst"]
    assert hit.reason.startswith("40 requests") and hit.severity == "high"
    assert "dormant_identity_burst" not in rules_of(ev(T0), history())  # yesterday's person is not dormant

    assert rules_of(ev(T0, prompt_chars=60_000), history()) == ["size_far_above_usual"]
    assert rules_of(ev(T0, prompt_chars=60_000), IdentityState()) == []  # no usual yet: the forest's size features
    assert rules_of(ev(T0, prompt_chars=2_000), history()) == []

    night = IdentityState()  # two weeks of weekdays, one request an hour from 9:00 to 17:00
    for d in range(14):
        day = T0 - timedelta(days=14 - d)
        for h in range(9, 18) if day.weekday() < 5 else ():
            observe(ev(day.replace(hour=h)), night)
    for i in range(4):
        observe(ev(T0.replace(hour=3) + timedelta(minutes=5 * i)), night)
    assert "odd_hours_run" in rules_of(ev(T0.replace(hour=3, minute=25)), night)
    assert "odd_hours_run" not in rules_of(ev(T0.replace(minute=25)), night)
    young = IdentityState()  # an agent's first two hours: every hour of day is new to it, none is odd yet
    for m in range(0, 120):
        observe(ev(T0.replace(hour=0) + timedelta(minutes=m), kind="agent"), young)
    assert "odd_hours_run" not in rules_of(ev(T0.replace(hour=2, minute=1), kind="agent"), young)


def test_severity_is_the_highest_hit():
    hits = check(ev(T0, vendor="openai", prompt_secret_hits=1, injection_markers=3), IdentityState(), POLICY,
                 event_time(ev(T0)))
    assert {h.rule for h in hits} == {"sensitive_to_unapproved_vendor", "prompt_injection"}
    assert severity_of(hits) == "critical" and severity_of([]) is None


@pytest.mark.parametrize("policy, why", [
    ({}, "no vendors section"), ({"vendors": []}, "no vendors section"),
    ({"vendors": {"openai": {"max_level": "secret"}}}, "max_level must be one of"),
    ({"vendors": {"openai": "restricted"}}, "max_level must be one of"),
])
def test_a_policy_without_a_usable_vendors_section_is_refused(policy, why):
    with pytest.raises(ValueError, match=why):
        config_from_policy(policy)


def test_the_vendors_default_level_is_the_gateways():
    assert config_from_policy({"vendors": {"openai": {}, "local": {"max_level": "restricted"}}}).vendor_max_level == {
        "openai": "internal", "local": "restricted"}


def test_an_identity_in_its_learning_period_raises_only_the_rules_that_need_no_history():
    recent = history(days=5, start=T0 - timedelta(days=5))  # first seen five days ago: still learning
    assert rules_of(ev(T0, prompt_chars=60_000), recent) == []  # its usual size is not known yet
    assert rules_of(ev(T0, vendor="mistral_ai", level="confidential"), recent) == ["sensitive_to_unapproved_vendor"]
    assert rules_of(ev(T0, injection_markers=3), recent) == ["prompt_injection"]
    assert rules_of(ev(T0, prompt_chars=60_000), recent, RuleConfig(learning_days=3)) == [
        "size_far_above_usual"]  # the learning period is a setting


def test_volume_above_the_identitys_profile_for_that_weekday():
    person = history(days=21, start=T0 - timedelta(days=21))  # 6 requests on each weekday, none at weekends
    saturday = T0 - timedelta(days=2)
    assert saturday.weekday() == 5
    for i in range(19):
        observe(ev(saturday.replace(hour=9) + timedelta(minutes=10 * i)), person)
    (hit,) = [h for h in check(ev(saturday.replace(hour=13)), person, POLICY, event_time(ev(saturday.replace(hour=13))))
              if h.rule == "volume_above_profile"]
    assert "20 requests today" in hit.reason and "Saturday" in hit.reason and hit.severity == "medium"
    usual = history(days=21, start=T0 - timedelta(days=21))
    for i in range(5):
        observe(ev(saturday.replace(hour=9) + timedelta(minutes=10 * i)), usual)
    assert "volume_above_profile" not in rules_of(ev(saturday.replace(hour=13)), usual)  # a usual day's work
    # Against the hours its day usually takes: more than its whole usual day by mid-morning, before
    # its usual hour, shows then (not only once 2.5 days' worth are in).
    person = history(days=21, start=T0 - timedelta(days=21), per_day=12)  # 12 at 10:00-10:50 each weekday
    monday = T0.replace(hour=8)
    for i in range(19):
        observe(ev(monday + timedelta(minutes=3 * i)), person)
    (hit,) = [h for h in check(ev(monday.replace(hour=9)), person, POLICY, event_time(ev(monday.replace(hour=9))))
              if h.rule == "volume_above_profile"]
    assert hit.reason.startswith("20 requests today (UTC) by 09:59, the 0.0 this identity usually has made by then")
    busy = history(days=21, start=T0 - timedelta(days=21), per_day=12)
    for i in range(19):
        observe(ev(T0 + timedelta(minutes=2 * i)), busy)
    assert "volume_above_profile" not in rules_of(ev(T0 + timedelta(minutes=40)), busy)  # its usual 10:00 hour


def test_a_new_identity_at_volume_once_the_scorer_knows_its_population():
    new = IdentityState()
    for i in range(19):
        observe(ev(T0 + timedelta(minutes=3 * i)), new)
    at = ev(T0 + timedelta(minutes=59))
    hits = check(at, new, POLICY, event_time(at), scorer_since=event_time(at) - 30 * 86400)
    assert [h.rule for h in hits] == ["new_identity_volume"] and "20 requests within an hour" in hits[0].reason
    # An agent runs at its volume from its first hour: 20 is nothing for one, 200 is.
    bot, busy = IdentityState(), IdentityState()
    for i in range(199):
        observe(ev(T0 + timedelta(seconds=15 * i), kind="agent"), busy)
        if i < 19:
            observe(ev(T0 + timedelta(minutes=3 * i), kind="agent"), bot)
    agent_at = ev(T0 + timedelta(minutes=59), kind="agent")
    assert check(agent_at, bot, POLICY, event_time(agent_at), scorer_since=0.0) == []
    assert "new_identity_volume" in [h.rule for h in check(agent_at, busy, POLICY, event_time(agent_at),
                                                           scorer_since=0.0)]
    # A scorer that started this week has not seen its population: everyone is new to it.
    assert check(at, new, POLICY, event_time(at), scorer_since=event_time(at) - 86400) == []
    assert check(at, new, POLICY, event_time(at)) == []
    slow = IdentityState()
    for i in range(5):
        observe(ev(T0 + timedelta(minutes=10 * i)), slow)
    assert check(at, slow, POLICY, event_time(at), scorer_since=0.0) == []


def test_a_vendor_new_to_the_identity_with_more_sensitive_or_personal_data():
    person = history(days=21, start=T0 - timedelta(days=21))  # internal data to openai
    first = ev(T0, vendor="azure.ai.openai", level="restricted")
    (hit,) = check(first, person, POLICY, event_time(first))
    assert hit.rule == "new_vendor_sensitive" and "first use" in hit.reason and hit.severity == "high"
    assert rules_of(ev(T0, vendor="azure.ai.openai"), person) == []  # a new vendor, the usual data
    assert rules_of(ev(T0, vendor="openai", level="confidential"), person) == []  # its usual vendor
    (pii,) = check(ev(T0, vendor="azure.ai.openai", prompt_pii_hits=2), person, POLICY, event_time(ev(T0)))
    assert pii.rule == "new_vendor_sensitive" and pii.severity == "medium"  # data the policy lets it have: the digest
    (secret,) = check(ev(T0, vendor="azure.ai.openai", level="confidential", prompt_secret_hits=1), person, POLICY, event_time(ev(T0)))
    assert secret.rule == "new_vendor_sensitive" and secret.severity == "high"
    observe(ev(T0, vendor="azure.ai.openai"), person)
    later = ev(T0 + timedelta(days=2), vendor="azure.ai.openai", level="restricted")
    assert "in use since 48 h" in check(later, person, POLICY, event_time(later))[0].reason  # slow exfiltration
    much_later = ev(T0 + timedelta(days=8), vendor="azure.ai.openai", level="restricted")
    assert rules_of(much_later, person) == []  # a week on, the vendor is one of its own
    # A vendor taken up in the identity's first week is one of the habits it formed, not a departure:
    # once its learning period ends, sensitive data to it is not "a new vendor" (every identity's
    # vendors would be new for a week after its learning ends otherwise).
    young = IdentityState()
    observe(ev(T0 - timedelta(days=8), vendor="openai"), young)
    observe(ev(T0 - timedelta(days=5), vendor="azure.ai.openai"), young)
    settled = ev(T0, vendor="azure.ai.openai", level="restricted")
    assert rules_of(settled, young) == []
    assert "new_vendor_sensitive" in rules_of(ev(T0, vendor="mistral_ai", level="restricted"), young)  # first use
    # A state kept before first uses were recorded: its vendors are old ones; what it takes up later is new.
    old = state_from_dict({k: v for k, v in state_to_dict(history(days=21, start=T0 - timedelta(days=21))).items()
                           if k not in ("first_seen", "vendor_since")})
    assert old.vendor_since == {"openai": 0.0} and old.first_seen == 0.0
    assert rules_of(ev(T0, vendor="openai", level="confidential"), old) == []
    observe(ev(T0, vendor="azure.ai.openai"), old)
    assert rules_of(ev(T0 + timedelta(hours=2), vendor="azure.ai.openai", level="restricted"), old) == [
        "new_vendor_sensitive"]


def test_a_response_more_sensitive_than_the_prompt_and_the_identitys_usual():
    person = history(days=21, start=T0 - timedelta(days=21))
    assert rules_of(ev(T0, vendor="azure.ai.openai", level="internal", response="restricted"), person) == [
        "response_above_prompt"]
    assert rules_of(ev(T0, vendor="azure.ai.openai", level="internal", response="internal"), person) == []
    assert rules_of(ev(T0, level="confidential", response="confidential"), person) == []  # no higher than asked


def test_a_state_kept_before_days_were_counted_raises_no_volume_finding_until_it_has_a_weeks_days():
    from aiaudit.detectors.features import state_from_dict, state_to_dict

    person = history(days=21, start=T0 - timedelta(days=21))
    old = state_to_dict(person)
    for key in ("first_seen", "days_active", "day_count", "vendor_since"):
        old.pop(key)  # as a scorer before this version wrote it
    upgraded = state_from_dict(old)
    assert upgraded.first_seen == 0.0 and upgraded.days_active == 0  # past learning, its days unknown
    for i in range(30):
        observe(ev(T0 + timedelta(minutes=10 * i)), upgraded)
    assert "volume_above_profile" not in rules_of(ev(T0 + timedelta(hours=6)), upgraded)
    for i in range(30):
        observe(ev(T0 + timedelta(minutes=10 * i)), person)
    assert "volume_above_profile" in rules_of(ev(T0 + timedelta(hours=6)), person)  # the same day, counted
