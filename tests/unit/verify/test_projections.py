"""The tables people read, held to the chained records they come from (pure): an edited, forged
or deleted row of alerts, alert_status, dead_letters ... is found and located."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson

from aiaudit.pipeline import names
from aiaudit.pipeline.chain import record_v2
from aiaudit.pipeline.chain.kinds import KINDS
from aiaudit.pipeline.chain.record import ChainHead, ChainId, Source
from aiaudit.pipeline.chain.step import InputMessage, chain_messages
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.settings import KafkaSettings
from aiaudit.pipeline.sink.rows import rows_of
from aiaudit.pipeline.store import alerts, dead_letters
from aiaudit.pipeline.verify.projections import compare, expected_rows, normalise, projected_tables

K = KafkaSettings()
SIGNER = Ed25519Signer.generate()
AT = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=timezone.utc)


def chain_of(topic: str, values: list[bytes], headers=()):
    kind = next(k for k in KINDS if k.input_topic(K) == topic)
    head = ChainHead.genesis(ChainId(f"acme/test/{topic}/p0/g1"))
    return chain_messages(head, SIGNER, kind.name, [InputMessage(v, None, Source(topic, 0, i), tuple(headers), 0)
                                                     for i, v in enumerate(values)]).records


class Consumed:
    def __init__(self, topic, value):
        self.t, self.v = topic, value

    def topic(self):
        return self.t

    def partition(self):
        return 0

    def offset(self):
        return 0

    def value(self):
        return self.v

    def headers(self):
        return []


def stored_tables(records, topic):
    """The rows the sink itself writes for these chained records (its real routing)."""
    kind = next(k for k in KINDS if k.input_topic(K) == topic)
    return rows_of([Consumed(kind.chain_topic(K), r.to_wire()) for r in records], K)


def parsed(records):
    return [(r.origin, r.seq, record_v2.parse_payload(r.payload)) for r in records]


STATUSES = [orjson.dumps(alerts.status_message(f"uid-{i}", "acknowledged", "soc-lead", "looking", AT)) for i in range(3)]


def test_the_rows_the_sink_wrote_are_exactly_those_the_chain_makes():
    records = chain_of(K.alert_status_topic, STATUSES + [b"not a status"])
    tables = stored_tables(records, K.alert_status_topic)
    expected = expected_rows(parsed(records), K)
    status = compare(names.ALERT_STATUS_TABLE, expected.rows[names.ALERT_STATUS_TABLE],
                     tables.get(names.ALERT_STATUS_TABLE) * 2, K)  # a redelivery's exact duplicates collapse
    assert (status.rows, status.failures) == (3, [])
    dead = compare(names.DEAD_LETTER_TABLE, expected.rows[names.DEAD_LETTER_TABLE], tables.get(names.DEAD_LETTER_TABLE),
                   K)
    assert (dead.rows, dead.failures) == (1, [])  # the unreadable status is a dead-letter row, chained too


def test_an_edited_a_forged_and_a_deleted_row_are_each_found():
    records = chain_of(K.alert_status_topic, STATUSES)
    rows = stored_tables(records, K.alert_status_topic).get(names.ALERT_STATUS_TABLE)
    edited = [*rows[:1], [rows[1][0], "resolved", *rows[1][2:]]]  # row 2 deleted, row 1 edited
    forged = alerts.status_row("uid-9", "resolved", "soc-lead", "closed", AT)  # never chained
    check = compare(names.ALERT_STATUS_TABLE, expected_rows(parsed(records), K).rows[names.ALERT_STATUS_TABLE],
                    [*edited, forged], K)
    reasons = sorted((f.reason, f.origin, f.seq) for f in check.failures or [])
    origin = records[0].origin
    assert reasons == [("row_missing", origin, 1), ("row_missing", origin, 2), ("row_not_chained", "store", None),
                       ("row_not_chained", "store", None)]
    assert check.rows == 1
    assert all(f.where == "table alert_status" for f in check.failures or [] if f.reason == "row_not_chained")


def test_dead_letters_the_sink_made_of_unchained_topics_are_counted_apart_not_passed_as_chained():
    sink_made = dead_letters.row(K.scores_topic, 0, 7, f"bad_{K.scores_topic}_message", "x", b"junk")
    forged = dead_letters.row("ai.requests", 0, 7, "malformed", "x", b"junk")  # claims to be the chain worker's
    check = compare(names.DEAD_LETTER_TABLE, {}, [sink_made, forged], K)
    assert check.outside == 1 and [f.reason for f in check.failures or []] == ["row_not_chained"]


def test_times_compare_to_the_millisecond_the_tables_keep():
    assert normalise([AT]) == normalise([AT.replace(microsecond=123000)]) == normalise([AT.replace(tzinfo=None)])
    assert normalise([AT]) != normalise([AT.replace(microsecond=124000)])


def test_every_projected_table_is_one_the_sink_writes_from_a_kind():
    assert set(projected_tables(K)) == {names.ALERTS_TABLE, names.INCIDENTS_TABLE, names.ALERT_STATUS_TABLE,
                                        names.DEAD_LETTER_TABLE, names.POLICIES_TABLE, names.MODEL_PROMOTIONS_TABLE,
                                        names.DELIVERIES_TABLE, names.ACCESS_TABLE,
                                        names.ERASURES_TABLE, names.RULES_TABLE, names.KEY_SETS_TABLE}
