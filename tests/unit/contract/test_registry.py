"""The registry client against a local HTTP server that speaks the two registry calls we use (a
stand-in: no real Confluent registry can be installed here), including the registry failing."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import fastavro
import pytest

from aiaudit.pipeline import contract
from aiaudit.pipeline.chain.record import ChainHead, Source
from aiaudit.pipeline.chain.step import InputMessage, chain_batch
from aiaudit.pipeline.contract.registry import RegistryClient
from aiaudit.pipeline.emit.synthetic import SyntheticEvents
from aiaudit.pipeline.errors import DependencyUnavailable, EventRejected, InvalidEvent, UnknownSchema
from aiaudit.pipeline.keys import Ed25519Signer
from tests.registry_stand_in import RegistryStandIn

MAX = 256 * 1024


@pytest.fixture
def stand_in():
    registry = RegistryStandIn().start()
    yield registry
    registry.stop()


@pytest.fixture
def registry_url(stand_in):
    return stand_in.url


def event() -> dict:
    return SyntheticEvents(4, datetime(2026, 11, 28, tzinfo=timezone.utc), "reg").next_event()


def test_registry_framing_round_trip(registry_url):
    client = RegistryClient(registry_url)
    sid = client.register("AIRequest-value", contract.schema_text())
    assert client.register("AIRequest-value", contract.schema_text()) == sid  # idempotent
    data = contract.encode(event(), max_bytes=MAX, schema_id=sid)
    out = contract.decode(data, max_bytes=MAX, resolve=RegistryClient(registry_url).resolve)
    assert out["event_id"] == event()["event_id"]


def test_unknown_registry_id_is_unknown_schema(registry_url):
    data = contract.frame_confluent(99, contract.encode_datum(event()))
    with pytest.raises(UnknownSchema, match="404"):
        contract.decode(data, max_bytes=MAX, resolve=RegistryClient(registry_url).resolve)


def test_writer_schema_missing_a_required_field_is_invalid(registry_url):
    # An emitter built against a schema without policy_version: Avro resolution refuses it.
    schema = json.loads(contract.schema_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "policy_version"]
    client = RegistryClient(registry_url)
    sid = client.register("AIRequest-value", json.dumps(schema))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), {k: v for k, v in event().items() if k != "policy_version"})
    with pytest.raises(InvalidEvent, match="policy_version"):
        contract.decode(contract.frame_confluent(sid, buf.getvalue()), max_bytes=MAX, resolve=client.resolve)


def _registered_event(stand_in) -> tuple[RegistryClient, bytes]:
    sid = RegistryClient(stand_in.url).register("AIRequest-value", contract.schema_text())
    return RegistryClient(stand_in.url), contract.encode(event(), max_bytes=MAX, schema_id=sid)


@pytest.mark.parametrize("status", [500, 503, 401, 429])
def test_a_failing_registry_is_a_dependency_outage_not_bad_input(stand_in, status):
    client, data = _registered_event(stand_in)
    stand_in.fail_with = status
    with pytest.raises(DependencyUnavailable, match=f"HTTP {status}") as info:
        contract.decode(data, max_bytes=MAX, resolve=client.resolve)
    assert not isinstance(info.value, EventRejected)  # the chain step would dead-letter an EventRejected
    stand_in.fail_with = None
    assert contract.decode(data, max_bytes=MAX, resolve=client.resolve)["event_id"] == event()["event_id"]


def test_an_unreachable_registry_is_a_dependency_outage(stand_in):
    client, data = _registered_event(stand_in)
    stand_in.stop()
    with pytest.raises(DependencyUnavailable, match="unreachable"):
        contract.decode(data, max_bytes=MAX, resolve=client.resolve)
    stand_in.start()  # back on the same port: the same client resolves again
    assert contract.decode(data, max_bytes=MAX, resolve=client.resolve)["event_id"] == event()["event_id"]


def test_a_registry_id_holding_no_avro_schema_is_bad_input(stand_in):
    stand_in.schemas[7] = "{not a schema"
    data = contract.frame_confluent(7, contract.encode_datum(event()))
    with pytest.raises(UnknownSchema, match="not a usable Avro schema"):
        contract.decode(data, max_bytes=MAX, resolve=RegistryClient(stand_in.url).resolve)


def test_the_chain_step_dead_letters_nothing_while_the_registry_is_down(stand_in):
    client, data = _registered_event(stand_in)
    stand_in.stop()
    msgs = [InputMessage(data, None, Source("ai.requests", 0, i)) for i in range(3)]
    decode = lambda b: contract.decode(b, max_bytes=MAX, resolve=client.resolve)  # noqa: E731
    head = ChainHead.genesis("acme/t/ai.requests/p0/g1")  # type: ignore[arg-type]  # a ChainId is a str
    with pytest.raises(DependencyUnavailable):
        chain_batch(head, Ed25519Signer.generate(), msgs, decode)
    stand_in.start()
    result = chain_batch(head, Ed25519Signer.generate(), msgs, decode)
    assert len(result.records) == 3 and result.dead_letters == []
