"""Incidents through the delivery agent on the real broker, to a receiver that checks every
signature: each incident's page goes out once, within the organisation's daily paging budget
(past half of it only critical incidents page; an exempt rule's always do); what the budget holds
back is recorded as held and listed in the day's digest, which goes out with the next day's first
page, or by the digest clock once the day is over when no page comes. The budget's count survives
a kill -9 of the agent. Incident updates that do not ask for a page, and incidents nobody signed,
are never delivered."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from aiaudit.detectors.features import IdentityState
from aiaudit.detectors.rules import RuleHit
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.keys import load_or_create_scorer_key, scorer_key_file
from aiaudit.pipeline.ops.supervisor import start_worker
from aiaudit.pipeline.query.incidents import incident_history, list_incidents
from aiaudit.pipeline.score.finding_signature import HEADER, header_value, sign_finding
from aiaudit.pipeline.score.incidents import group
from aiaudit.pipeline.score.ocsf import detection_finding, incident_finding
from aiaudit.pipeline.score.step import Scored
from tests.integration.support import read_topic, settings_env, sink_until_drained
from tests.integration.test_delivery_agent import SECRET, Receiver, stop_all

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.timeout(300)]
DAY = 86_400
T0 = time.time() // DAY * DAY + 60.0  # today (UTC), a minute after midnight: the pager's days are the clock's


def incident(identity: str, rule: str, severity: str, at: float, *, seq: int) -> list[dict]:
    """The incident updates the scoring worker writes for one finding of `rule` (and a second,
    later finding: an update that asks for no page)."""
    state = {identity: IdentityState()}
    out = []
    for n, when in enumerate((at, at + 60)):
        event = {"actor": {"id": identity, "type": "workforce"}, "decision": "allow", "event_id": f"e{seq}-{n}",
                 "occurred_at": "2026-12-01T09:00:00Z", "route": "chat"}
        f = detection_finding(origin="itest/inc/ai.requests/p0/g1", seq=seq * 10 + n, leaf_hash=f"{seq:064x}",
                              event=event, score=0.8, severity=severity, explanation=[], model_version="rules-only",
                              detected_at_ms=int(when * 1000), rule_hits=[RuleHit(rule, severity, "test")])
        s = Scored("itest/inc/ai.requests/p0/g1", seq * 10 + n, f"{seq:064x}", identity, "", 0.8, severity,
                   "rules-only", f, when, ((rule, {"high": 0.8, "critical": 0.95}[severity]),))
        out += [incident_finding(incident=u.incident, activity=u.activity, page=u.page, last=f,
                                 detected_at_ms=int(when * 1000), rules_version="rules-2", model_version="rules-only")
                for u in group([s], state)]
    return out


def publish(settings, items: list[dict], txid: str, *, signed: bool = True) -> None:
    key, _ = load_or_create_scorer_key(scorer_key_file(settings.signing.keys_dir, None))
    producer = Producer(kafka_config.transactional_producer(settings, txid))
    producer.init_transactions(30)
    producer.begin_transaction()
    for f in items:
        headers = [(HEADER, header_value(sign_finding(f, key)))] if signed else []
        producer.produce(settings.kafka.incidents_topic, key=settings.chain.org.encode(), value=orjson.dumps(f),
                         headers=headers)
    producer.commit_transaction(30)


def uid(updates: list[dict]) -> str:
    return updates[0]["finding_info_list"][0]["uid"]


def test_incidents_page_once_within_the_daily_budget_and_the_rest_wait_for_the_digest(settings, client, tmp_path: Path):
    receiver = Receiver()
    dest_file = tmp_path / "destinations.yaml"
    dest_file.write_text(f"""
destinations:
  - {{name: soc, kind: webhook, url: "http://127.0.0.1:{receiver.port}/soc", secret_env: DELIVER_TEST_KEY}}
  - {{name: siem, kind: webhook, send: findings, url: "http://127.0.0.1:{receiver.port}/siem",
      secret_env: DELIVER_TEST_KEY}}
""")
    env = {**settings_env(settings), "AIAUDIT_DELIVER__DESTINATIONS_FILE": str(dest_file), "DELIVER_TEST_KEY": SECRET,
           "AIAUDIT_DELIVER__PAGES_PER_DAY": "4"}
    logs = tmp_path / "deliver.log"
    # Day one: budget 4. Two high pages; then the bar is critical: a high one is held, two critical
    # ones page (the budget is spent), a high one is held; the exempt rule's incident pages anyway.
    day1 = [incident("u0", "prompt_injection", "high", T0, seq=0), incident("u1", "request_burst", "high", T0 + 1, seq=1),
            incident("u2", "prompt_injection", "high", T0 + 2, seq=2),
            incident("u3", "prompt_injection", "critical", T0 + 3, seq=3),
            incident("u4", "denial_burst", "critical", T0 + 4, seq=4),
            incident("u5", "prompt_injection", "high", T0 + 5, seq=5),
            incident("u9", "secrets_sent", "high", T0 + 6, seq=9)]
    after_kill = incident("u6", "prompt_injection", "critical", T0 + 3600, seq=6)  # the day's budget is still spent
    day2 = incident("u7", "prompt_injection", "high", T0 + DAY, seq=7)  # a new day: pages, and day one's digest goes
    forged = incident("u8", "prompt_injection", "critical", T0 + 7, seq=8)
    # Yesterday: two pages, then one held; no page comes after it, so the digest clock sends its digest.
    yesterday = [incident(f"y{i}", "prompt_injection", sev, T0 - DAY + i, seq=20 + i)
                 for i, sev in enumerate(("critical", "high", "high"))]
    procs = [start_worker("deliver", log_file=logs, env=env)]
    try:
        publish(settings, [u for inc in yesterday for u in inc], "itest-inc-0")
        digest0 = "digest:itest:" + time.strftime("%Y-%m-%d", time.gmtime(T0 - DAY))
        deadline = time.monotonic() + 150  # the clock looks every 60 s
        while digest0 not in {r["doc"]["finding"]["finding_info_list"][0]["uid"] for r in receiver.accepted("soc")}:
            assert time.monotonic() < deadline and procs[0].poll() is None, logs.read_text()[-3000:]
            time.sleep(0.5)
        publish(settings, [u for inc in day1 for u in inc], "itest-inc-1")
        publish(settings, forged, "itest-inc-forged", signed=False)
        paged_day1 = {uid(day1[i]) for i in (0, 1, 3, 4, 6)}
        deadline = time.monotonic() + 120
        while {r["doc"]["finding"]["finding_info_list"][0]["uid"] for r in receiver.accepted("soc")} < paged_day1:
            assert time.monotonic() < deadline and procs[0].poll() is None, logs.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1.5)  # the pager's state reaches its changelog (the table's commit interval is 1 s)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        procs.append(start_worker("deliver", log_file=logs, env=env))
        publish(settings, after_kill, "itest-inc-2")
        publish(settings, day2, "itest-inc-3")
        digest_uid = "digest:itest:" + time.strftime("%Y-%m-%d", time.gmtime(T0))
        deadline = time.monotonic() + 120
        while not {uid(day2), digest_uid} <= {r["doc"]["finding"]["finding_info_list"][0]["uid"]
                                              for r in receiver.accepted("soc")}:
            assert time.monotonic() < deadline and procs[-1].poll() is None, logs.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1)
        records = [orjson.loads(m.value()) for m in read_topic(settings, settings.kafka.deliveries_topic)]
    finally:
        stop_all(procs, receiver)

    assert not receiver.refused and not receiver.accepted("siem")  # incidents go to incidents destinations only
    soc = receiver.accepted("soc")
    got = [r["doc"]["finding"]["finding_info_list"][0]["uid"] for r in soc]
    # Each page once (a repeat only of one in flight at the kill, under its delivery id); never a held one.
    paged_yesterday = {uid(yesterday[0]), uid(yesterday[1])}
    assert set(got) == paged_yesterday | {digest0} | paged_day1 | {uid(day2), digest_uid}, (got, logs.read_text()[-3000:])
    assert len({r["delivery"] for r in soc}) == len(set(got))
    page = next(r["doc"]["finding"] for r in soc if r["doc"]["finding"]["finding_info_list"][0]["uid"] == uid(day1[0]))
    assert page["class_uid"] == 2005 and page["unmapped"]["page"] is True and page["unmapped"]["incident"]["identity"] == "u0"
    held = {uid(day1[2]), uid(day1[5]), uid(after_kill)}
    assert {r["finding_uid"] for r in records if r["outcome"] == "held"} == held | {uid(yesterday[2])}
    first = next(r["doc"]["finding"] for r in soc if r["doc"]["finding"]["finding_info_list"][0]["uid"] == digest0)
    assert [h["uid"] for h in first["unmapped"]["digest"]["held"]] == [uid(yesterday[2])]
    digest = next(r["doc"]["finding"] for r in soc if r["doc"]["finding"]["finding_info_list"][0]["uid"] == digest_uid)
    assert {h["uid"] for h in digest["unmapped"]["digest"]["held"]} == held and digest["unmapped"]["digest"]["count"] == 3
    assert uid(forged) not in got and "unsigned" in logs.read_text()

    # The sink stores the held record; the incident's history says it was held by the budget.
    sink_until_drained(settings, client)
    page = {i["uid"]: i["page_state"] for i in list_incidents(client, settings, limit=1000)}
    assert page[uid(day1[2])] == "held by the budget" and page[uid(day1[0])] == "paged"
    history = incident_history(client, settings, uid(day1[2]))
    assert [h["status"] for h in history if h["actor"] == "pager"] == ["held"]
    assert history[0]["status"] == "opened"
