"""The sink's read API on real embedded chDB: the engine itself refuses writes and table
functions (readonly=1), and every answer is capped with a clear error."""

from __future__ import annotations

import pytest

from aiaudit.pipeline import store
from aiaudit.pipeline.errors import StoreError
from aiaudit.pipeline.store.access_log import AccessLog
from aiaudit.pipeline.store.api import ReadLimits, RemoteClient, StoreServer

pytestmark = pytest.mark.integration


@pytest.fixture
def served(settings, client, tmp_path):
    server = StoreServer(store.connect(settings, apply_ddl=False), tmp_path, ReadLimits(max_rows=100, max_seconds=5),
                         access=AccessLog(settings))  # every read recorded, on the test's broker
    server.start()
    yield RemoteClient.find(tmp_path)
    server.close()


def test_reads_answer_and_a_large_answer_is_refused_with_what_to_do(served, settings):
    db = store.database(settings)
    assert served.command(f"EXISTS TABLE {db}.evidence") == 1
    assert len(served.query("SELECT number FROM numbers(100)").result_rows) == 100
    with pytest.raises(StoreError, match="over the store API's caps .*100 rows.*aiaudit export"):
        served.query("SELECT number FROM numbers(1000)")


def test_the_engine_refuses_writes_and_table_functions_whatever_passes_the_statement_checks(client, settings):
    """The second layer: a statement that slipped past read_statement's checks still runs read-only."""
    db = store.database(settings)
    before = client.command(f"SELECT count() FROM {db}.dead_letters")
    suffix = "\nSETTINGS readonly=1, max_result_rows=100, result_overflow_mode='throw'"
    for sql in (f"INSERT INTO {db}.dead_letters (reason) SELECT 'forged'",
                "SELECT * FROM file('/etc/passwd', 'LineAsString')",
                f"CREATE TABLE {db}.x (a UInt8) ENGINE = Memory"):
        with pytest.raises(Exception, match="readonly|READONLY"):
            client.query(sql + suffix)
    assert client.command(f"SELECT count() FROM {db}.dead_letters") == before
    assert client.command("SELECT getSetting('readonly')") == 0  # the sink's own session is untouched


def test_alerts_grouped_count_every_match_not_only_the_first_page(settings, client):
    """`aiaudit alerts list --group-by actor` totals all 150 alerts, though the groups shown are few."""
    from datetime import datetime, timedelta, timezone

    import orjson

    from aiaudit.pipeline.query.alerts import list_alerts

    db = store.database(settings)
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    finding = orjson.dumps({"unmapped": {"detections": [{"detector": "request_burst"}]}}).decode()
    rows = [[f"uid-{i}", t0 + timedelta(seconds=i), ("critical" if i == 7 else "high" if i % 3 else "medium"),
             f"actor-{i % 3}", "o", i, "00", 0.9, "m1", finding] for i in range(150)]
    store.insert(client, f"{db}.alerts", rows, ("finding_uid", "detected_at", "severity", "actor_id", "origin", "seq",
                                                "leaf_hash", "score", "model_version", "finding"))
    groups = list_alerts(client, settings, limit=2, group_by=("actor",))
    assert [(g["actor"], g["alerts"]) for g in groups] == [("actor-2", 50), ("actor-1", 50)]
    everything = {g["actor"]: g for g in list_alerts(client, settings, limit=10, group_by=("actor",))}
    assert sum(g["alerts"] for g in everything.values()) == 150
    assert everything["actor-1"]["highest"] == "critical" and everything["actor-0"]["highest"] == "medium"
    assert everything["actor-0"]["open"] == 50
    by_two = list_alerts(client, settings, limit=100, group_by=("actor", "severity"))
    assert sum(g["alerts"] for g in by_two) == 150 and len(by_two) == 4
