"""Every evidence kind is chained exactly once through the faults the requests' chain survives:
the writer killed (kill -9) mid-stream and restarted, and the broker killed and restarted.

One fault run (module fixture) drives every kind at once, as `aiaudit worker evidence` does in
production; the test is parametrised by kind, so each kind's outcome is its own result: each
message written to the kind's topic is in its chains once, byte-exact, in order, signed with the
kind in the domain tag, and the chains verify from ClickHouse with their signed checkpoints.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from aiaudit.infra.topics import topic_specs
from aiaudit.pipeline import store
from aiaudit.pipeline.chain import record_v2
from aiaudit.pipeline.chain.kinds import KINDS
from aiaudit.pipeline.chain.record import Record
from aiaudit.pipeline.contract.access import access_message
from aiaudit.pipeline.contract.analyst_keys import load_status_signer
from aiaudit.pipeline.contract.analysts import ACCESS_SIG_DOMAIN, ERASURE_SIG_DOMAIN, StatusSigner
from aiaudit.pipeline.contract.erasure import erasure_message
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.keys import KeyRing, read_jwks
from aiaudit.pipeline.store.alerts import status_message
from aiaudit.pipeline.verify.rules import StoredRecord, verify_chain
from tests.integration.support import (
    SOAK,
    ChainWorkers,
    own_broker,
    read_topic,
    sink_until_drained,
    verify_whole_with,
    wait_evidence_chained,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]

PER_ROUND = 200 if SOAK else 40  # messages per kind in each of the three rounds


def _message(kind: str, i: int, analyst: StatusSigner) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A message like the kind's producers write (its content is not what is tested: its bytes are;
    a status change, an access record and an erasure record are signed by the analyst, or their chain
    worker refuses them)."""
    value = b'{"kind": "%s", "n": %d, "score": 0.%d}' % (kind.encode(), i, i)
    if kind == "status_change":
        value = orjson.dumps(analyst.sign(status_message(f"uid-{i}", "acknowledged", analyst.name, f"n {i}",
                                                         datetime.now(timezone.utc))))
    if kind == "access":  # as store/access_log.AccessLog writes one
        value = orjson.dumps(analyst.sign(access_message(
            op="query", what=f"SELECT {i}", rows=i, digest="sha256:" + "ab" * 32, outcome="served", host="itest",
            at=datetime.now(timezone.utc)), domain=ACCESS_SIG_DOMAIN))
    if kind == "erasure":  # as `aiaudit erase` writes one
        value = orjson.dumps(analyst.sign(erasure_message(
            action="erase", event_id=f"event-{i}", reason=f"Art. 17 request {i}", key_ids=[],
            at=datetime.now(timezone.utc)), domain=ERASURE_SIG_DOMAIN))
    return value, f"{kind}-{i}".encode(), [("aiaudit.reason", b"invalid")] if kind == "dead_letter" else []


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory, chdb_dir: Any) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("kinds")
    with own_broker(tmp, chdb_dir, name="kinds") as (kafka, settings):
        k = settings.kafka
        producer = Producer(kafka_config.producer(settings))
        sent: dict[str, list[bytes]] = {kind.name: [] for kind in KINDS}
        analyst = load_status_signer(settings.signing.analyst_key_file)

        def write(round_: int) -> None:
            for kind in KINDS:
                for i in range(round_ * PER_ROUND, (round_ + 1) * PER_ROUND):
                    value, key, headers = _message(kind.name, i, analyst)
                    producer.produce(kind.input_topic(k), value=value, key=key, headers=headers)
                    sent[kind.name].append(value)
            assert producer.flush(120) == 0

        with ChainWorkers(settings, tmp) as workers:
            write(0)
            workers.start("ev1", role="evidence")
            write(1)
            time.sleep(4.0)  # some kinds mid-batch when the writer dies
            workers.kill9("ev1")
            workers.start("ev2", role="evidence")
            time.sleep(3.0)
            os.kill(kafka.pid(), signal.SIGKILL)  # the broker dies under the restarted writer
            time.sleep(1.0)
            kafka.up()
            write(2)
            wait_evidence_chained(settings, timeout_s=240)
            time.sleep(settings.chain.checkpoint_interval_s + 1.5)  # the last sizes signed
            workers.stop_all()
            logs = workers.logs()
        parts = {spec.name: spec.partitions for spec in topic_specs(settings)}
        # The analyst key set the status-change, access and erasure chain workers checked with is on
        # the key-set topic too, written by those workers (each time one starts): chained like the test's.
        sent["key_set"] += [m.value() for m in read_topic(settings, k.key_sets_topic, partitions=1)
                            if orjson.loads(m.value()).get("key_set") == "analysts"]
        chained = {kind.name: [Record.from_wire(m.value()) for m in read_topic(
            settings, kind.chain_topic(k), partitions=parts[kind.chain_topic(k)])] for kind in KINDS}
        client = store.connect(settings)
        try:
            sink_until_drained(settings, client)
            report = verify_whole_with(settings, client, emitters=False)
        finally:
            client.close()
        yield {"sent": sent, "chained": chained, "report": report, "settings": settings, "logs": logs}


@pytest.mark.parametrize("kind", [k.name for k in KINDS])
def test_every_kind_is_chained_exactly_once_through_kill9_and_a_broker_restart(fault_run, kind):
    records = fault_run["chained"][kind]
    values = []
    for rec in records:
        obj = record_v2.parse_payload(rec.payload)
        assert obj["kind"] == kind
        values.append(record_v2.Message.from_event(obj["event"]).value)
    sent = fault_run["sent"][kind]
    assert Counter(values) == Counter(sent), fault_run["logs"][-3000:]  # each once: none lost, none doubled
    keyring = KeyRing.from_jwks(read_jwks(fault_run["settings"].signing.keys_dir))
    by_origin: dict[str, list[Record]] = {}
    for rec in records:
        by_origin.setdefault(rec.origin, []).append(rec)
    for origin, chain in by_origin.items():
        # The committed chain topic alone (no store): contiguous, linked, signed under the kind's tag.
        report = verify_chain([StoredRecord(r.origin, r.seq, r.payload, r.sig, r.leaf_hash) for r in chain], keyring)
        assert report.kind == kind and report.records == len(chain)
        # Within a chain, messages keep their partition's order.
        offsets = [record_v2.parse_payload(r.payload)["src"]["offset"] for r in chain]
        assert offsets == sorted(offsets)


def test_the_store_verifies_every_kind_with_its_signed_checkpoints(fault_run):
    report = fault_run["report"]
    assert report.ok, report.text()
    kinds = report.kinds()
    assert set(kinds) == {k.name for k in KINDS}, kinds
    assert {k: v["records"] for k, v in kinds.items()} == {k: len(v) for k, v in fault_run["sent"].items()}
    assert report.checkpoints >= sum(v["chains"] for v in kinds.values())  # every chain under a signed checkpoint
