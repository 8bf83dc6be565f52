"""Settings are built once and never change: a change is a copy."""

from __future__ import annotations

import pydantic
import pytest

from aiaudit.pipeline.settings import GatewaySettings, Settings


def test_settings_and_their_sections_cannot_be_written():
    s = Settings(gateway=GatewaySettings(port=8400))
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        s.gateway.port = 9999  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        s.gateway = GatewaySettings()  # type: ignore[misc]
    assert s.gateway.port == 8400


def test_updated_is_a_copy_with_the_named_fields_changed():
    s = Settings(gateway=GatewaySettings(port=8400, host="127.0.0.1"))
    t = s.updated(gateway={"port": 8401}, chain={"heartbeat_interval_s": 1.0})
    assert (t.gateway.port, t.gateway.host, t.chain.heartbeat_interval_s) == (8401, "127.0.0.1", 1.0)
    assert (s.gateway.port, s.chain.heartbeat_interval_s) == (8400, Settings().chain.heartbeat_interval_s)
    assert t.kafka is s.kafka  # untouched sections are shared, safely: they cannot change
