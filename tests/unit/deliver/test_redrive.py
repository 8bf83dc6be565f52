"""Re-driving dead-lettered deliveries (pure): which dead letters become retries, and how the
agent's policy treats a re-drive."""

from __future__ import annotations

import orjson
import pytest

from aiaudit.detectors.rules import RuleHit
from aiaudit.pipeline.deliver.policy import DeliveryRecord, Destination, after_attempt, delivery_uid, retry_step
from aiaudit.pipeline.deliver.redrive import MAX_DEAD_LETTER_BYTES, plan_redrives
from aiaudit.pipeline.score.ocsf import detection_finding

DOWN = Destination("down", "webhook", max_attempts=2, backoff_s=0.1, backoff_max_s=0.2)
SOC = Destination("soc", "webhook")


def finding(actor: str = "ann@acme.example", seq: int = 42) -> dict:
    event = {"actor": {"id": actor, "type": "workforce"}, "decision": "allow", "event_id": f"e{seq}",
             "occurred_at": "2026-11-29T10:00:00.000000Z", "gen_ai_provider_name": "openai",
             "gen_ai_request_model": "gpt-4o", "route": "chat"}
    return detection_finding(origin="acme/prod/ai.requests/p1/g1", seq=seq, leaf_hash=f"{seq:064x}", event=event,
                             score=0.41, severity="high", explanation=[], model_version="m1",
                             detected_at_ms=1_795_950_000_123, rule_hits=[RuleHit("prompt_injection", "high", "x")])


SIG = {"key": "k", "sig": "s"}  # carried as it is: the agent checks it before it sends (test_finding_signature)


def dead(dest: Destination, f: dict, attempt: int = 2, partition: int = 1, **extra) -> bytes:
    """A dead letter as the agent writes it after a last attempt."""
    uid = delivery_uid(dest, f["finding_info"]["uid"])
    rec = DeliveryRecord(uid, f["finding_info"]["uid"], dest.name, "dead_lettered", attempt, 1_795_950_001.0,
                         "connection", "refused")
    return orjson.dumps({"delivery": rec.message(), "finding": f, "partition": partition, "sig": SIG, **extra})


def test_the_newest_dead_letter_of_each_delivery_becomes_one_retry_in_its_alerts_partition():
    a, b = finding("ann@acme.example", 1), finding("bob@acme.example", 2)
    plan = plan_redrives([dead(DOWN, a, 2, partition=3), dead(SOC, b, 6, partition=0), dead(DOWN, a, 3, partition=3)],
                         4, now=1000.0, by="ops@acme.example")
    jobs = {(r.job["destination"], r.job["finding"]["finding_info"]["uid"]): r for r in plan.redrives}
    assert len(plan.redrives) == 2 and plan.skipped == {"an older dead letter of a delivery dead-lettered again": 1}
    again = jobs["down", a["finding_info"]["uid"]]
    assert again.partition == 3 and again.delivery_uid == delivery_uid(DOWN, a["finding_info"]["uid"])
    assert again.job == {"delivery_uid": again.delivery_uid, "destination": "down", "attempt": 4, "due": 1000.0,
                         "finding": a, "sig": SIG, "redrive_by": "ops@acme.example"}
    assert jobs["soc", b["finding_info"]["uid"]].job["attempt"] == 7


def test_a_destination_or_a_finding_narrows_the_redrives():
    a, b = finding("ann@acme.example", 1), finding("bob@acme.example", 2)
    letters = [dead(DOWN, a), dead(SOC, a), dead(DOWN, b)]
    assert {r.job["destination"] for r in plan_redrives(letters, 4, now=1.0, by="ops", destination="soc").redrives} == {"soc"}
    only_b = plan_redrives(letters, 4, now=1.0, by="ops", finding_uid=b["finding_info"]["uid"]).redrives
    assert [(r.job["destination"], r.job["finding"]) for r in only_b] == [("down", b)]
    assert plan_redrives(letters, 4, now=1.0, by="ops", destination="nowhere").redrives == []


def test_who_redrives_is_named_and_bounded():
    for by in ("", "x" * 129):
        with pytest.raises(ValueError, match="--by"):
            plan_redrives([], 4, now=1.0, by=by)


def _doc(value: bytes) -> dict:
    return orjson.loads(value)


def _hostile() -> list[tuple[bytes | None, str]]:
    f = finding()
    good = _doc(dead(DOWN, f))
    other = finding("mallory@acme.example", 99)

    def edit(**changes) -> bytes:
        return orjson.dumps({**good, **changes})

    return [
        (None, "empty"), (b"", "empty"), (b"x" * (MAX_DEAD_LETTER_BYTES + 1), "larger than"),
        (b"{not json", "not JSON"), (b"[1, 2]", "not a JSON object"),
        (orjson.dumps({"reason": "not a detection finding (KeyError)", "src": "ai.audit.alerts/0/7"}),
         "no delivery to re-drive (not a detection finding"),
        (orjson.dumps({"reason": "destination 'old' is no longer configured", "finding": f}), "no delivery to re-drive"),
        (orjson.dumps({"delivery": good["delivery"], "finding": f}), "written before dead letters recorded"),
        (edit(partition=4), "not one of the 4 partitions"), (edit(partition=-1), "not one of the 4 partitions"),
        (edit(partition="1"), "not one of the 4 partitions"), (edit(partition=True), "not one of the 4 partitions"),
        (edit(delivery="x"), "delivery is not an object"),
        (edit(delivery={**good["delivery"], "delivery_uid": "../../etc"}), "malformed"),
        (edit(delivery={**good["delivery"], "attempt": 0}), "malformed"),
        (edit(delivery={**good["delivery"], "attempt": 10**9}), "malformed"),
        (edit(delivery={**good["delivery"], "attempt": 2.5}), "malformed"),
        (edit(delivery={**good["delivery"], "destination": "x" * 65}), "malformed"),
        (edit(finding={"finding_info": {"uid": f["finding_info"]["uid"]}}), "not a detection finding"),
        (edit(finding=other), "not of the finding beside it"),
    ]


@pytest.mark.parametrize("value, why", _hostile())
def test_a_dead_letter_that_cannot_be_redriven_is_counted_with_its_reason_and_the_rest_go_on(value, why):
    good = dead(DOWN, finding("ann@acme.example"))
    plan = plan_redrives([value, good], 4, now=1.0, by="ops")
    assert len(plan.redrives) == 1 and sum(plan.skipped.values()) == 1
    assert why in next(iter(plan.skipped)), plan.skipped


def test_the_agent_gives_a_redrive_one_more_attempt_and_only_from_the_dead_letter_it_came_from():
    # still dead-lettered at the attempt before: one more attempt, not in doubt
    step = retry_step({"state": "dead_lettered", "attempt": 2}, 3, redrive=True)
    assert (step.action, step.attempt, step.in_doubt) == ("send", 3, False)
    # delivered since, re-driven already (dead again at 3, or in flight), or an unknown delivery: nothing more
    for prior, n in (({"state": "delivered", "attempt": 3}, 3), ({"state": "dead_lettered", "attempt": 3}, 3),
                     ({"state": "dead_lettered", "attempt": 1}, 3), (None, 3), ({"state": "retrying", "attempt": 2}, 4)):
        assert retry_step(prior, n, redrive=True).action == "skip", (prior, n)
    # the same message without the re-drive mark (a forged or ordinary retry) does not revive a dead letter
    assert retry_step({"state": "dead_lettered", "attempt": 2}, 3).action == "skip"
    # a crash while the re-drive was in flight: resent once more, in doubt
    doubt = retry_step({"state": "sending", "attempt": 3}, 3, redrive=True)
    assert (doubt.action, doubt.in_doubt) == ("send", True)
    # and a re-drive that fails again goes straight back to the dead letter (no second round of retries)
    assert after_attempt(DOWN, "u", "failed", 3) == ("dead_lettered", None)
