"""The local broker's set-up errors say what to install (the tool lookup is replaced; nothing runs)."""

import pytest

from aiaudit.infra.kafka import broker
from aiaudit.pipeline.errors import InfraError
from aiaudit.pipeline.settings import LocalSettings, Settings


def test_missing_java_or_maven_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(broker, "LIB_DIR", tmp_path / "no-jars")
    kafka = broker.LocalKafka(Settings(local=LocalSettings(state_dir=tmp_path)))
    monkeypatch.setattr(broker.shutil, "which", lambda name: None)
    with pytest.raises(InfraError, match="java is not on PATH: install a Java 17"):
        kafka.ensure_jars()
    monkeypatch.setattr(broker.shutil, "which", lambda name: "/usr/bin/java" if name == "java" else None)
    with pytest.raises(InfraError, match="mvn is not on PATH: install Maven"):
        kafka.ensure_jars()


def test_status_of_a_broker_that_never_ran(tmp_path):
    kafka = broker.LocalKafka(Settings(local=LocalSettings(state_dir=tmp_path)))
    assert kafka.pid() is None and kafka.status().startswith("stopped")
    assert kafka.down() is False
