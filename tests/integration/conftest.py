"""Integration fixtures: a real Apache Kafka broker (local KRaft, started here) and embedded chDB.

No Docker engine is needed or looked for; nothing is skipped for lack of one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from aiaudit.infra.kafka.broker import LocalKafka
from aiaudit.infra.topics import ensure_topics
from aiaudit.pipeline import store
from aiaudit.pipeline.keys import (
    ensure_operator_key,
    generate_key,
    load_or_create_scorer_key,
    operator_key_file,
    scorer_key_file,
)
from aiaudit.pipeline.settings import (
    ChainSettings,
    ClickHouseSettings,
    EmitterSettings,
    KafkaSettings,
    LocalSettings,
    ScoreSettings,
    Settings,
    SigningSettings,
    SinkSettings,
)
from tests.integration.support import analyst_of, edge_emitter_key

# The test broker's port; another one lets two test runs share a machine.
TEST_PORT = int(os.environ.get("AIAUDIT_TEST_KAFKA_PORT", "29092"))


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("kafka")
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{TEST_PORT}"),
        local=LocalSettings(state_dir=state, kafka_port=TEST_PORT, controller_port=TEST_PORT + 1),
    )
    kafka = LocalKafka(settings)
    kafka.up()
    yield kafka
    kafka.down()


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One embedded chDB per test process (chDB admits one path per process); one database per test.
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def settings(broker: LocalKafka, chdb_dir: Path, tmp_path: Path) -> Settings:
    """Settings with topics, groups, keys and database of this test's own."""
    uid = uuid.uuid4().hex[:10]
    keys_dir = tmp_path / "keys"
    generate_key(keys_dir)
    ensure_operator_key(operator_key_file(keys_dir, None))  # seals exports: beside the keys folder, not in it
    load_or_create_scorer_key(scorer_key_file(keys_dir, None))  # signs findings; the delivery agent pins its .pub
    emitter_key = edge_emitter_key(keys_dir)
    analyst_key = analyst_of(keys_dir)  # soc-analyst-1 signs the tests' status changes
    s = Settings(
        kafka=KafkaSettings(bootstrap_servers=broker.bootstrap, requests_topic=f"req-{uid}", chain_topic=f"chain-{uid}",
                            dead_letter_topic=f"dlq-{uid}", alerts_topic=f"alerts-{uid}", incidents_topic=f"incidents-{uid}", alert_status_topic=f"alert-status-{uid}",
                            scores_topic=f"scores-{uid}", policies_topic=f"policies-{uid}",
                            content_topic=f"content-{uid}", checkpoints_topic=f"checkpoints-{uid}", score_state_topic=f"score-state-{uid}", model_promotions_topic=f"promotions-{uid}", deliveries_topic=f"deliveries-{uid}", delivery_retries_topic=f"delivery-retries-{uid}", delivery_dlq_topic=f"delivery-dlq-{uid}", access_topic=f"access-{uid}", erasures_topic=f"erasures-{uid}", rules_topic=f"rules-{uid}", key_sets_topic=f"key-sets-{uid}", deliver_app=f"deliver-{uid}", score_app=f"score-{uid}", partitions=4, chain_group=f"chain-{uid}",
                            sink_group=f"sink-{uid}", session_timeout_ms=6000),
        # The tests wait for each stage: shorter batch windows than the defaults (tuned for broker CPU).
        chain=ChainSettings(org="itest", env=uid, poll_timeout_s=0.2),
        signing=SigningSettings(keys_dir=keys_dir, analyst_key_file=analyst_key,
                                content_keys_dir=tmp_path / "content-keys"),
        emitter=EmitterSettings(key_file=emitter_key, linger_ms=10),
        clickhouse=ClickHouseSettings(dsn=SecretStr(f"chdb://{chdb_dir}"), database=f"t_{uid}"),
        sink=SinkSettings(max_batch_rows=5000, flush_interval_s=0.3),
        score=ScoreSettings(models_dir=tmp_path / "models", batch_events=500, batch_within_s=0.5),
        local=broker.settings.local,
    )
    ensure_topics(s)
    return s


@pytest.fixture
def client(settings: Settings):
    c = store.connect(settings)
    yield c
    c.close()  # embedded chDB stays locked while any client in this process is open
