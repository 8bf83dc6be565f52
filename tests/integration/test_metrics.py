"""Prometheus metrics as Prometheus reads them: a real chain worker process serving /metrics over
HTTP counts what it chained and dead-lettered and when it last signed; the real sink counts the
rows it stored (scraped from a /metrics server of the process it runs in); every name follows
the conventions and no label carries an identity."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from aiaudit.pipeline import metrics, names
from aiaudit.pipeline.emit.synthetic import malformed_messages
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.kafka.io import InputLag, end_offsets
from aiaudit.pipeline.ops.progress import chain_lag
from tests.integration.support import (
    ChainWorkers,
    emit_synthetic,
    free_port_pair,
    metric_value,
    scrape,
    sink_until_drained,
)

pytestmark = pytest.mark.integration


def test_the_chain_worker_and_the_sink_count_what_they_did(settings, client, tmp_path):
    chain_port = free_port_pair()
    sink_port = chain_port + 1
    metrics.serve(sink_port)  # the sink below runs in this process: its registry, served as a worker serves it
    before = scrape(sink_port)
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("m1", extra=("--metrics-port", str(chain_port)))
        emit_synthetic(settings, 150, emitter_id="edge-metrics", seed=5)
        bad = malformed_messages(2, settings.chain.max_event_bytes)
        raw = Producer(kafka_config.client(settings, **{"acks": "all", "enable.idempotence": True}))
        for _, data in bad:
            raw.produce(settings.kafka.requests_topic, value=data, key=b"bad")
        assert raw.flush(30) == 0
        deadline = time.monotonic() + 120
        while chain_lag(settings) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(settings.chain.checkpoint_interval_s + 1)  # the newest records' checkpoint is signed
        chained = scrape(chain_port)
        # Read to the end, the chain worker's input lag is 0 on each partition it read from (refreshed
        # every 5 s; a partition with no message has no known position, so no series).
        ends = end_offsets(settings, settings.kafka.requests_topic, settings.kafka.partitions)
        want = {str(p): 0.0 for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + 20
        while (lag := _lag(scrape(chain_port), settings.kafka.requests_topic)) != want and time.monotonic() < deadline:
            time.sleep(0.5)
        assert want and lag == want, (lag, want)
        sink_until_drained(settings, client)
    after = scrape(sink_port)

    assert metric_value(chained, "aiaudit_events_out_total", worker="chain", kind="request") == 150
    assert metric_value(chained, "aiaudit_events_in_total", worker="chain", kind="request") == 150 + len(bad)
    refused = {dict(labels)["reason"]: v for (n, labels), v in chained.items() if n == "aiaudit_dead_letters_total"}
    assert refused == dict(Counter(r for r, _ in bad)), refused  # one per bad message, by its reason
    assert metric_value(chained, "aiaudit_batch_duration_seconds_count", worker="chain", kind="request") >= 1
    signed = [v for (n, _), v in chained.items() if n == "aiaudit_checkpoint_signed_timestamp_seconds"]
    assert signed and time.time() - 120 < max(signed) <= time.time()
    stored = metric_value(after, "aiaudit_events_out_total", worker="sink", kind=names.EVIDENCE_TABLE) - metric_value(
        before, "aiaudit_events_out_total", worker="sink", kind=names.EVIDENCE_TABLE)
    assert stored == 150

    # Names by the conventions; labels only from the bounded set, never an identity.
    for (name, labels) in chained:
        assert name.startswith("aiaudit_") or not name.startswith("aiaudit"), name
        if name.startswith("aiaudit_"):
            assert {k for k, _ in labels} <= {"worker", "kind", "reason", "partition", "topic", "le"}, (name, labels)
            assert not any("@" in v or "edge-metrics" in v for _, v in labels), (name, labels)


def _lag(samples, topic: str) -> dict[str, float]:
    return {dict(labels)["partition"]: v for (n, labels), v in samples.items()
            if n == "aiaudit_input_lag_messages" and dict(labels)["topic"] == topic}


def test_the_input_lag_is_what_the_broker_holds_beyond_the_position(settings):
    """InputLag on a real consumer: 100 plain messages and a transaction of 10 (its commit marker
    is an offset too); read 30, the lag is the broker's end less 30; read to the end, 0 (the
    position passes the marker); the partition given up, its series is gone."""
    topic = settings.kafka.requests_topic
    plain = Producer(kafka_config.client(settings, **{"acks": "all", "enable.idempotence": True}))
    for i in range(100):
        plain.produce(topic, value=b"v", partition=0)
    assert plain.flush(30) == 0
    txn = Producer(kafka_config.transactional_producer(settings, f"lag-{topic}"))
    txn.init_transactions(30)
    txn.begin_transaction()
    for i in range(10):
        txn.produce(topic, value=b"t", partition=0)
    txn.commit_transaction(30)
    end = end_offsets(settings, topic, settings.kafka.partitions)[0]
    assert end == 111  # 110 messages and the commit marker

    consumer = Consumer(kafka_config.consumer(settings, f"lag-{topic}", **{"auto.offset.reset": "earliest"}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    gauge = InputLag("test")
    series = ("aiaudit_input_lag_messages", {"worker": "test", "topic": topic, "partition": "0"})
    try:
        read = 0
        while read < 30:
            read += len([m for m in consumer.consume(30 - read, timeout=5) if m.error() is None])
        assert gauge.update(consumer, force=True) == {(topic, 0): end - 30}
        assert REGISTRY.get_sample_value(*series) == end - 30
        assert gauge.update(consumer) == {}  # not due again within every_s: no broker or consumer call
        deadline = time.monotonic() + 30
        while read < 110 and time.monotonic() < deadline:
            read += len([m for m in consumer.consume(100, timeout=1) if m.error() is None])
        assert read == 110
        assert gauge.update(consumer, force=True) == {(topic, 0): 0}
        assert REGISTRY.get_sample_value(*series) == 0
        consumer.unassign()
        assert gauge.update(consumer, force=True) == {}
        assert REGISTRY.get_sample_value(*series) is None  # a partition given up is not shown as this worker's
    finally:
        consumer.close()


def test_the_alerting_rules_are_valid_and_fire_on_the_series_they_are_for():
    """Debian's promtool checks infra/prometheus/rules.yml and runs its unit tests (rules_test.yml:
    each alert fires on synthetic series of the metrics above, and stays quiet before)."""
    folder = Path(__file__).resolve().parents[2] / "infra" / "prometheus"
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package (.ci/run does)"
    checked = subprocess.run([promtool, "check", "rules", "rules.yml"], cwd=folder, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0 and "SUCCESS: 7 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "rules_test.yml"], cwd=folder, capture_output=True, text=True,
                            timeout=60)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    # Every metric a rule reads is one the workers export.
    read = set(re.findall(r"aiaudit_[a-z_]+", (folder / "rules.yml").read_text()))
    assert read <= exported_series(), read - exported_series()


def exported_series() -> set[str]:
    """Every series name pipeline/metrics.py exports (counters as _total, histograms' parts)."""
    out = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name
            out |= {name, f"{name}_total", f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return out


def test_the_scrape_config_and_every_dashboard_query_parse(tmp_path):
    """promtool checks infra/prometheus/prometheus.yml (with the rules it loads), and every query of the
    Grafana dashboard, each as a recording rule (promtool parses the PromQL)."""
    import json

    import yaml

    root = Path(__file__).resolve().parents[2] / "infra"
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package (.ci/run does)"
    checked = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=root / "prometheus",
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    dashboard = json.loads((root / "grafana" / "dashboards" / "aiaudit.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"aiaudit:dashboard_query_{i}", "expr": e}
                                                        for i, e in enumerate(exprs)]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    parsed = subprocess.run([promtool, "check", "rules", "dashboard.yml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert parsed.returncode == 0 and f"SUCCESS: {len(exprs)} rules found" in parsed.stdout, parsed.stdout + parsed.stderr
    broken = {"groups": [{"name": "x", "rules": [{"record": "aiaudit:x", "expr": "sum by (le (rate(x[5m])"}]}]}
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert subprocess.run([promtool, "check", "rules", "broken.yml"], cwd=tmp_path, capture_output=True,
                          timeout=60).returncode != 0  # the check does bite
