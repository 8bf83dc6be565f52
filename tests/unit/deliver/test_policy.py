"""The delivery agent's decisions (pure): filters, suppression, backoff, stable delivery ids,
replays after a restart, in-doubt sends, retries."""

from __future__ import annotations

import pytest

from aiaudit.pipeline.deliver.policy import (
    Destination,
    accepts,
    after_attempt,
    delivery_uid,
    first_step,
    retry_after,
    retry_step,
    suppressed,
    suppression_keys,
)
from tests.unit.deliver.findings import finding


def test_filters_by_severity_detector_and_route():
    dest = Destination("soc", "webhook", min_severity="high", detectors=frozenset({"prompt_injection"}),
                       routes=frozenset({"chat"}))
    assert accepts(dest, finding())
    assert not accepts(dest, finding(severity="medium"))
    assert not accepts(dest, finding(rules=("request_burst",)))
    assert not accepts(dest, finding(route="support-bot"))
    assert accepts(Destination("all", "syslog"), finding(severity="medium", route=None))
    with pytest.raises(ValueError, match="min_severity"):
        Destination("x", "chat", min_severity="low")


def test_suppression_per_identity_and_detector():
    dest = Destination("chat", "chat", suppress_s=900)
    keys = suppression_keys(finding(rules=("prompt_injection", "request_burst")))
    assert keys == ["alice@acme.example\nprompt_injection", "alice@acme.example\nrequest_burst"]
    sent = {keys[0]: 1000.0}
    assert not suppressed(dest, sent, keys, 1100.0)  # request_burst not yet sent for alice
    sent[keys[1]] = 1050.0
    assert suppressed(dest, sent, keys, 1100.0) and not suppressed(dest, sent, keys, 1000.0 + 900)
    assert not suppressed(dest, sent, suppression_keys(finding("bob@acme.example")), 1100.0)


def test_delivery_ids_are_stable_and_backoff_grows_to_a_cap_then_stops():
    dest = Destination("siem", "splunk_hec", max_attempts=6, backoff_s=2, backoff_max_s=20)
    uid = delivery_uid(dest, "f-1")
    assert uid == delivery_uid(dest, "f-1") != delivery_uid(Destination("other", "splunk_hec"), "f-1")
    waits = [retry_after(dest, uid, a) for a in range(1, 7)]
    assert waits[-1] is None and all(w is not None for w in waits[:-1])
    assert 2 <= waits[0] <= 2.4 and 4 <= waits[1] <= 4.8 and 16 <= waits[3] <= 19.2 and 20 <= waits[4] <= 24


# --- the agent's decisions (pure): replays after a restart, in-doubt sends, retries ----------


DEST = Destination("soc", "webhook", suppress_s=600, max_attempts=3, backoff_s=1, backoff_max_s=4)


def test_a_new_finding_is_sent_and_a_replayed_one_is_not_sent_again():
    f = finding()
    assert first_step(DEST, f, None, {}, 1000.0).action == "send"
    for state in ("delivered", "suppressed", "dead_lettered", "retrying"):
        assert first_step(DEST, f, {"state": state, "attempt": 1}, {}, 1000.0).action == "skip", state
    assert first_step(DEST, finding(severity="medium"), None, {}, 1000.0).action == "send"
    assert first_step(Destination("x", "chat", min_severity="high"), finding(severity="medium"), None, {}, 1.0).action == "skip"


def test_only_a_first_attempt_with_no_outcome_is_resent_from_the_alerts_side_and_marked_in_doubt():
    step = first_step(DEST, finding(), {"state": "sending", "attempt": 1}, {}, 1000.0)
    assert (step.action, step.attempt, step.in_doubt) == ("send", 1, True)
    # a retry in flight at the kill is the retries topic's to replay, not the alerts topic's
    assert first_step(DEST, finding(), {"state": "sending", "attempt": 2}, {}, 1000.0).action == "skip"


def test_suppression_by_the_findings_own_times():
    f = finding()
    sent = {k: 1000.0 for k in suppression_keys(f)}
    assert first_step(DEST, f, None, sent, 1599.0).action == "suppress"
    assert first_step(DEST, f, None, sent, 1600.0).action == "send"
    assert first_step(DEST, finding(rules=("prompt_injection", "denial_burst")), None, sent, 1100.0).action == "send"


def test_a_retry_is_acted_on_once_whatever_is_replayed():
    assert retry_step({"state": "retrying", "attempt": 1}, 2).action == "send"
    doubt = retry_step({"state": "sending", "attempt": 2}, 2)
    assert (doubt.action, doubt.in_doubt) == ("send", True)
    for prior, n in (({"state": "retrying", "attempt": 2}, 2), ({"state": "sending", "attempt": 3}, 2),
                     ({"state": "delivered", "attempt": 2}, 3), (None, 2), ({"state": "retrying", "attempt": 1}, 3)):
        assert retry_step(prior, n).action == "skip", (prior, n)


def test_after_an_attempt_retry_with_backoff_until_the_last_then_dead_letter():
    assert after_attempt(DEST, "u", "delivered", 1) == ("delivered", None)
    state, delay = after_attempt(DEST, "u", "failed", 1)
    assert state == "retrying" and 1 <= delay <= 1.2
    assert after_attempt(DEST, "u", "failed", 2)[0] == "retrying"
    assert after_attempt(DEST, "u", "failed", 3) == ("dead_lettered", None)
