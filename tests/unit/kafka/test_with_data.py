"""What the batch workers keep of a consume() call (pipeline/kafka/io.py::with_data)."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from aiaudit.pipeline.errors import InfraError
from aiaudit.pipeline.kafka.io import with_data
from aiaudit.pipeline.settings import KafkaSettings, Settings


class Msg:
    def __init__(self, value: bytes | None, error: KafkaError | None = None) -> None:
        self._value, self._error = value, error

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> KafkaError | None:
        return self._error


SETTINGS = Settings(kafka=KafkaSettings(bootstrap_servers="broker-a:9092"))


def test_data_is_kept_in_order_and_a_passing_error_is_logged_and_skipped(caplog: pytest.LogCaptureFixture):
    down = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")
    msgs = [Msg(b"a"), Msg(None, down), Msg(b"b"), Msg(None, KafkaError(KafkaError._PARTITION_EOF, "eof")), Msg(b"c")]
    with caplog.at_level(logging.WARNING):
        kept = with_data(msgs, SETTINGS, "sink worker")  # type: ignore[arg-type]
    assert [m.value() for m in kept] == [b"a", b"b", b"c"]
    assert "sink worker: broker unreachable at broker-a:9092" in caplog.text
    assert len(caplog.records) == 2


def test_a_fatal_error_stops_the_worker_with_its_name():
    fatal = KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)
    with pytest.raises(InfraError, match="chain worker: fatal consumer error"):
        with_data([Msg(b"a"), Msg(None, fatal)], SETTINGS, "chain worker")  # type: ignore[arg-type]
