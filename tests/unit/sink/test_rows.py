"""The sink's routing, pure: each topic's messages become rows of its table; nothing is dropped."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import orjson

from aiaudit.pipeline import names
from aiaudit.pipeline.chain.kinds import KINDS
from aiaudit.pipeline.chain.record import ChainHead, ChainId, Source
from aiaudit.pipeline.chain.step import InputMessage, chain_messages
from aiaudit.pipeline.contract import parse_ts
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.settings import KafkaSettings
from aiaudit.pipeline.sink.rows import projected_topics, rows_of, sink_tables, sink_topics
from aiaudit.pipeline.store import alerts, dead_letters, evidence, kind_evidence, policies, promotions
from aiaudit.pipeline.store import content as content_table
from tests.unit.helpers import build_chain

K = KafkaSettings()


@dataclass
class Msg:
    """A consumed message as the sink reads it (confluent_kafka.Message's accessors)."""

    t: str
    v: bytes | None
    h: list[tuple[str, bytes]] = field(default_factory=list)
    p: int = 2
    o: int = 40

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o

    def value(self) -> bytes | None:
        return self.v

    def headers(self) -> list[tuple[str, bytes]]:
        return self.h


SIGNER = Ed25519Signer.generate()


def chained(topic: str, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Msg:
    """The record of the evidence kind read from `topic` that chains `value` (at partition 2, offset
    40 of `topic`), as the sink consumes it from the kind's chain topic."""
    kind = next(k for k in KINDS if k.input_topic(K) == topic)
    head = ChainHead.genesis(ChainId(f"acme/test/{topic}/p2/g1"))
    rec = chain_messages(head, SIGNER, kind.name, [InputMessage(value, None, Source(topic, 2, 40),
                                                                tuple(headers or ()), 0)]).records[0]
    return Msg(kind.chain_topic(K), rec.to_wire())


def test_every_topic_reaches_its_own_table():
    rec = build_chain(1, Ed25519Signer.generate())[0]
    score = {"origin": rec.origin, "seq": 0, "leaf_hash": rec.leaf_hash, "actor_id": "a", "ts": "2026-11-28T09:00:00.000000Z",
             "score": 0.5, "severity": "", "model_version": "v1"}
    bundle = {"policy_id": "p", "policy_version": "1+sha256.x", "declared_version": "1", "canonical_json": "{}",
              "source_yaml": "", "loaded_at": "2026-11-28T09:00:00+00:00", "gateway_id": "g"}
    content = {"event_id": "e", "retention_scope": "s", "expires_at": "2026-12-28T09:00:00+00:00", "key_b64": "AA=="}
    dl = chained(K.dead_letter_topic, b"\x00bad", [(names.HDR_REASON, b"malformed"), (names.HDR_DETAIL, b"why"),
                                               (names.HDR_SRC, b"ai.requests/3/17")])
    rows = rows_of([Msg(K.chain_topic, rec.to_wire()), Msg(K.scores_topic, orjson.dumps([score, score])), dl,
                    chained(K.policies_topic, orjson.dumps(bundle)), Msg(K.content_topic, orjson.dumps(content))], K)
    assert rows.get(names.EVIDENCE_TABLE) == [evidence.row(rec)]
    assert len(rows.get(names.SCORES_TABLE)) == 2 and rows.get(names.SCORES_TABLE)[0][:2] == [rec.origin, 0]
    assert rows.get(names.POLICIES_TABLE) == [policies.row(bundle)]
    assert rows.get(names.CONTENT_TABLE)[0][:4] == ["e", "s", parse_ts("2026-12-28T09:00:00+00:00"), "AA=="]  # kept before sealing
    sealed = {"v": 2, "event_id": "e2", "retention_scope": "s", "expires_at": "2026-12-28T09:00:00+00:00",
              "subjects": ["alice"], "key_ids": {"alice": "0" * 16}, "sealed": "c2VhbGVk"}
    row = dict(zip(content_table.COLUMNS, rows_of([Msg(K.content_topic, orjson.dumps(sealed))], K).get(names.CONTENT_TABLE)[0]))
    assert (row["prompt"], row["key_b64"], row["subjects"], row["sealed"]) == (None, "", ["alice"], "c2VhbGVk")
    dead = dict(zip(dead_letters.COLUMNS, rows.get(names.DEAD_LETTER_TABLE)[0]))
    # The dead letter keeps where the input came from (the header), why, and the message whole.
    assert (dead["src_topic"], dead["src_partition"], dead["src_offset"]) == ("ai.requests", 3, 17)
    assert dead["reason"] == "malformed" and base64.b64decode(dead["message_b64"]) == b"\x00bad"
    assert rows.get(names.ALERTS_TABLE) == []


def test_an_unreadable_message_becomes_a_dead_letter_kept_whole():
    bad_alert = orjson.dumps({"finding_info": 1})  # chained (its kind takes any bytes), not a finding
    junk = [Msg(K.chain_topic, b"{not json"), chained(K.alerts_topic, bad_alert),
            Msg(K.scores_topic, orjson.dumps([{"origin": "o"}])), Msg(K.chain_topic, None), Msg("elsewhere", b"x")]
    rows = rows_of(junk, K)
    dead = [dict(zip(dead_letters.COLUMNS, r)) for r in rows.get(names.DEAD_LETTER_TABLE)]
    assert [d["reason"] for d in dead] == [f"bad_{K.chain_topic}_message", f"bad_{K.alerts_topic}_message",
                                            f"bad_{K.scores_topic}_message", f"bad_{K.chain_topic}_message",
                                            "unexpected_topic"]
    # Kept whole: the message itself (for the chained finding, the message its record holds).
    assert [base64.b64decode(d["message_b64"]) for d in dead] == [
        bad_alert if m is junk[1] else m.value() or b"" for m in junk]
    assert all((d["src_partition"], d["src_offset"]) == (2, 40) for d in dead)
    assert rows.get(names.EVIDENCE_TABLE) == [] and rows.get(names.SCORES_TABLE) == []


def test_the_sink_topic_list_is_the_one_the_tables_are_written_from():
    topics = sink_topics(K)
    # The evidence kinds come from their chains only: an unchained finding never reaches a table.
    assert [t.topic for t in topics] == [K.chain_topic, K.checkpoints_topic, K.scores_topic, K.content_topic,
                                         *(t for kind in KINDS for t in (kind.chain_topic(K), kind.checkpoints_topic(K)))]
    assert not {kind.input_topic(K) for kind in KINDS} & {t.topic for t in topics}
    assert {t.table: t.columns for t in topics}[names.SCORES_TABLE] == alerts.SCORE_COLUMNS
    # Each table once, though several topics feed the checkpoints and kind_evidence tables.
    tables = sink_tables(K)
    assert list(tables).count(names.CHECKPOINTS_TABLE) == 1 and tables[names.KIND_EVIDENCE_TABLE] == kind_evidence.COLUMNS
    assert set(tables) == {t.table for t in topics} | {t.table for t in projected_topics(K)}


def test_alert_status_changes_become_rows_and_hostile_ones_dead_letters():
    from datetime import datetime, timezone

    at = datetime(2026, 11, 29, 8, 0, tzinfo=timezone.utc)
    good = orjson.dumps(alerts.status_message("uid-1", "acknowledged", "soc-1", "looking", at))
    bad = [orjson.dumps({**alerts.status_message("uid-1", "acknowledged", "soc-1", "", at), "status": "deleted"}),
           orjson.dumps({**alerts.status_message("uid-1", "resolved", " ", "", at)}),
           orjson.dumps({**alerts.status_message("x" * 200, "resolved", "a", "", at)}), b"[]"]
    rows = rows_of([chained(K.alert_status_topic, good), *(chained(K.alert_status_topic, b) for b in bad)], K)
    assert rows.get(names.ALERT_STATUS_TABLE) == [["uid-1", "acknowledged", "soc-1", "looking", at]]
    assert len(rows.get(names.DEAD_LETTER_TABLE)) == len(bad)


def test_model_promotions_become_rows_and_hostile_ones_dead_letters():
    from datetime import datetime, timezone

    live = {"manifest": {"version": "m2", "sha256": "ab" * 32}, "promoted_by": "ops-1",
            "promoted_at": "2026-11-29T08:00:00.000000Z", "kid": "k1", "signature": "c2ln"}
    good = promotions.message(live, orjson.dumps(live).decode(), first_scored_at="2026-11-29T08:00:02.500000Z",
                              scorer="aiaudit-score/s1")
    bad = [{**good, "version": 7}, {k: v for k, v in good.items() if k != "live_json"},
           {**good, "promoted_at": "yesterday"}, {**good, "scorer": None}]
    rows = rows_of([chained(K.model_promotions_topic, orjson.dumps(good)),
                    *(chained(K.model_promotions_topic, orjson.dumps(b)) for b in bad)], K)
    assert rows.get(names.MODEL_PROMOTIONS_TABLE) == [[
        "m2", "ab" * 32, "ops-1", datetime(2026, 11, 29, 8, 0, tzinfo=timezone.utc), "k1", orjson.dumps(live).decode(),
        datetime(2026, 11, 29, 8, 0, 2, 500000, tzinfo=timezone.utc), "aiaudit-score/s1"]]
    assert len(rows.get(names.DEAD_LETTER_TABLE)) == len(bad)


def test_delivery_records_become_rows_and_hostile_ones_dead_letters():
    from datetime import datetime, timezone

    from aiaudit.pipeline.deliver.policy import DeliveryRecord

    good = DeliveryRecord("d" * 32, "f-1", "soc", "delivered", 2, 1_795_950_000.25, "200", "ok",
                          {"in_doubt": True}).message()
    bad = [{**good, "outcome": "lost"}, {**good, "attempt": "2"}, {**good, "attempt": True}, {**good, "at": -1},
           {**good, "response": "x" * 501}, {**good, "finding_uid": None}, {**good, "detail": []},
           {k: v for k, v in good.items() if k != "destination"}]
    rows = rows_of([chained(K.deliveries_topic, orjson.dumps(good)),
                    *(chained(K.deliveries_topic, orjson.dumps(b)) for b in bad), chained(K.deliveries_topic, b"{")], K)
    assert rows.get(names.DELIVERIES_TABLE) == [[
        "d" * 32, "f-1", "soc", "delivered", 2, datetime(2026, 11, 29, 11, 0, 0, 250000, tzinfo=timezone.utc),
        "200", "ok", '{"in_doubt":true}']]
    assert len(rows.get(names.DEAD_LETTER_TABLE)) == len(bad) + 1
