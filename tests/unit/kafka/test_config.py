"""Kafka client settings, built in one place: every client gets the deployment's security
properties, secrets stay out of the settings' printed form, and each client kind is the same."""

from __future__ import annotations

import json

from aiaudit.pipeline.kafka import config
from aiaudit.pipeline.settings import Settings


def test_client_config_secrets_reach_the_client_but_never_the_printed_settings(monkeypatch):
    monkeypatch.setenv("AIAUDIT_KAFKA__CLIENT_CONFIG", json.dumps(
        {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "svc",
         "sasl.password": "hunter2-very-secret", "ssl.key.password": "pem-pass-secret"}))
    settings = Settings()
    for shown in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.kafka)):
        assert "hunter2-very-secret" not in shown and "pem-pass-secret" not in shown
    for conf in (config.client(settings), config.consumer(settings, "g"), config.producer(settings),
                 config.transactional_producer(settings, "t")):
        assert conf["sasl.password"] == "hunter2-very-secret" and conf["ssl.key.password"] == "pem-pass-secret"
        assert conf["security.protocol"] == "SASL_SSL" and conf["bootstrap.servers"] == settings.kafka.bootstrap_servers


def test_each_client_kind_has_its_guarantees():
    s = Settings()
    c = config.consumer(s, "grp")
    assert c["group.id"] == "grp" and c["enable.auto.commit"] is False and c["isolation.level"] == "read_committed"
    assert config.consumer(s, "grp", read_committed=False)["isolation.level"] == "read_uncommitted"
    st = config.stage_consumer(s, "grp", **{"fetch.min.bytes": 1})
    assert st["session.timeout.ms"] == s.kafka.session_timeout_ms and st["fetch.min.bytes"] == 1
    p = config.producer(s)
    assert p["enable.idempotence"] is True and p["acks"] == "all" and p["compression.type"] == s.kafka.compression
    t = config.transactional_producer(s, "aiaudit-chain:o")
    assert t["transactional.id"] == "aiaudit-chain:o" and t["enable.idempotence"] is True and t["acks"] == "all"


def test_extra_properties_override_the_defaults():
    assert config.producer(Settings(), acks="1")["acks"] == "1"


def test_librdkafka_lines_are_filtered_for_transient_retries_and_repeats():
    import logging
    import uuid

    from aiaudit.pipeline.kafka.config import LOG

    run = uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))  # no line of another test's

    def shown(msg: str) -> bool:
        record = LOG.makeRecord(LOG.name, logging.WARNING, __file__, 1, f"{msg} {run}", (), None)
        return bool(LOG.filter(record))

    assert not shown("GETPID [rdkafka#producer-5] [thrd:main]: Failed to acquire idempotence PID from broker "
                     "127.0.0.1:19092/1: Broker: Coordinator load in progress: retrying")
    assert shown("FAIL [rdkafka#consumer-1] [thrd:127.0.0.1:29099/1]: 127.0.0.1:29099/1: Connect to ipv4#127.0.0.1:29099 "
                 "failed: Connection refused (after 0ms in state CONNECT)")
    assert not shown("FAIL [rdkafka#consumer-1] [thrd:127.0.0.1:29099/1]: 127.0.0.1:29099/1: Connect to "
                     "ipv4#127.0.0.1:29099 failed: Connection refused (after 1ms in state CONNECT)")  # a repeat


def test_a_broker_handle_torn_down_in_an_outage_is_retried_not_fatal():
    from confluent_kafka import KafkaError

    from aiaudit.pipeline.kafka.io import transient

    assert transient(KafkaError(KafkaError._DESTROY_BROKER))  # a chain worker reading tails mid-outage
    assert transient(KafkaError(KafkaError._TRANSPORT))
    assert not transient(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))  # a real refusal still fails
