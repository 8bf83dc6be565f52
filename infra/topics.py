"""Topic definitions: the same names and configs for the local broker and docker-compose."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient  # isort: split

from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]  # from cimpl, re-exported without __all__

from aiaudit.pipeline.chain.kinds import KIND_RECORD_MAX_BYTES, KINDS
from aiaudit.pipeline.errors import InfraError
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.settings import Settings

UNLIMITED = "-1"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    return _input_specs(settings) + evidence_kind_topics(settings)


def _input_specs(settings: Settings) -> list[TopicSpec]:
    k = settings.kafka
    # Oversized events must still reach the chain worker, so it can dead-letter them whole.
    wire_max = str(max(settings.chain.max_event_bytes * 4, 1_048_576))
    return [
        TopicSpec(k.requests_topic, k.partitions, {
            "cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000), "max.message.bytes": wire_max,
        }),
        # The audit chain: append-only evidence, never compacted, never expired.
        TopicSpec(k.chain_topic, k.partitions, {
            "cleanup.policy": "delete", "retention.ms": UNLIMITED, "retention.bytes": UNLIMITED,
            "max.message.bytes": wire_max, "min.insync.replicas": "1",
        }),
        # Tree states and signed checkpoints, one partition per chain like the chain: kept like the chain.
        TopicSpec(k.checkpoints_topic, k.partitions, {
            "cleanup.policy": "delete", "retention.ms": UNLIMITED, "retention.bytes": UNLIMITED,
            "max.message.bytes": str(4 * 1_048_576),
        }),
        TopicSpec(k.dead_letter_topic, k.partitions, {
            "cleanup.policy": "delete", "retention.ms": UNLIMITED, "retention.bytes": UNLIMITED,
            "max.message.bytes": str(int(wire_max) + 65536),
        }),
        # A.8.16 evidence: findings are kept like the chain; scores for a year.
        TopicSpec(k.alerts_topic, k.partitions, {"cleanup.policy": "delete", "retention.ms": UNLIMITED}),
        # Incident updates, kept like the findings; partitioned like the alerts (the delivery agent's
        # pager table follows them), all of an organisation's in one partition (its daily budget).
        TopicSpec(k.incidents_topic, k.partitions, {"cleanup.policy": "delete", "retention.ms": UNLIMITED}),
        # Analysts' status changes (ack, resolve, reopen): evidence of "detected and resolved", kept like the alerts.
        TopicSpec(k.alert_status_topic, 1, {"cleanup.policy": "delete", "retention.ms": UNLIMITED}),
        TopicSpec(k.scores_topic, k.partitions, {"cleanup.policy": "delete", "retention.ms": str(365 * 24 * 3600 * 1000)}),
        # The scoring worker's identity states, partitioned like the chain: the latest per identity.
        TopicSpec(k.score_state_topic, k.partitions, {"cleanup.policy": "compact", "max.message.bytes": str(8 * 1_048_576)}),
        # Every model promotion a scorer used (signed by the operator who promoted it): kept like the chain.
        TopicSpec(k.model_promotions_topic, 1, {"cleanup.policy": "delete", "retention.ms": UNLIMITED,
                                                "retention.bytes": UNLIMITED}),
        # Delivery records (where, when, with what answer) are evidence of "reported": kept like the alerts.
        TopicSpec(k.deliveries_topic, k.partitions, {"cleanup.policy": "delete", "retention.ms": UNLIMITED}),
        # The delivery agent's scheduled retries: partitioned like the alerts (its tables follow them).
        TopicSpec(k.delivery_retries_topic, k.partitions, {"cleanup.policy": "delete",
                                                           "retention.ms": str(7 * 24 * 3600 * 1000)}),
        # Deliveries that kept failing, each with its finding, until someone re-drives them.
        TopicSpec(k.delivery_dlq_topic, 1, {"cleanup.policy": "delete", "retention.ms": UNLIMITED}),
        # Erasures, legal holds and retention expiries (signed erasure records): one chain, kept like the chain.
        TopicSpec(k.erasures_topic, 1, {"cleanup.policy": "delete", "retention.ms": UNLIMITED, "retention.bytes": UNLIMITED}),
        # Each rule configuration and each key set in force (as first used): one chain each, kept like the chain.
        TopicSpec(k.rules_topic, 1, {"cleanup.policy": "delete", "retention.ms": UNLIMITED, "retention.bytes": UNLIMITED}),
        TopicSpec(k.key_sets_topic, 1, {"cleanup.policy": "delete", "retention.ms": UNLIMITED, "retention.bytes": UNLIMITED,
                                        "max.message.bytes": str(4 * 1_048_576)}),
        # Every read of evidence through aiaudit (access records): one chain, kept like the chain.
        TopicSpec(k.access_topic, 1, {"cleanup.policy": "delete", "retention.ms": UNLIMITED, "retention.bytes": UNLIMITED}),
        # Every policy bundle that governed a request: kept like the chain.
        TopicSpec(k.policies_topic, 1, {"cleanup.policy": "delete", "retention.ms": UNLIMITED, "retention.bytes": UNLIMITED,
                                        "max.message.bytes": str(4 * 1_048_576)}),
        # Content keys and kept content: the ClickHouse table enforces each retention scope (TTL);
        # the topic only buffers, a week at most.
        TopicSpec(k.content_topic, k.partitions, {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000),
                                                  "max.message.bytes": str(16 * 1_048_576)}),
    ]


def evidence_kind_topics(settings: Settings) -> list[TopicSpec]:
    """Each evidence kind's chain and checkpoints topics (chain/kinds.py): partitioned like its input
    topic (one chain per input partition), append-only and never expired, like the requests' chain."""
    k, specs = settings.kafka, []
    partitions = {s.name: s.partitions for s in _input_specs(settings)}
    kept = {"cleanup.policy": "delete", "retention.ms": UNLIMITED, "retention.bytes": UNLIMITED}
    for kind in KINDS:
        n = partitions[kind.input_topic(k)]
        specs.append(TopicSpec(kind.chain_topic(k), n, {**kept, "max.message.bytes": str(KIND_RECORD_MAX_BYTES)}))
        specs.append(TopicSpec(kind.checkpoints_topic(k), n, {**kept, "max.message.bytes": str(4 * 1_048_576)}))
    return specs


def ensure_topics(settings: Settings, *, replication_factor: int = 1, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics with their configs; returns the names created. Idempotent."""
    admin = AdminClient(kafka_config.client(settings))
    try:
        existing = set(admin.list_topics(timeout=min(timeout_s, 10.0)).topics)
    except KafkaException as exc:
        raise InfraError(f"no Kafka broker answers at {settings.kafka.bootstrap_servers} "
                         f"({exc.args[0].str() if exc.args else exc}): start one (`aiaudit infra up`) or set "
                         "AIAUDIT_KAFKA__BOOTSTRAP_SERVERS") from None
    wanted = [s for s in topic_specs(settings) if s.name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, num_partitions=s.partitions, replication_factor=replication_factor, config=s.config) for s in wanted],
        operation_timeout=timeout_s,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result()
            created.append(name)
        except Exception as exc:  # KafkaException wrapping TOPIC_ALREADY_EXISTS is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise InfraError(f"cannot create topic {name}: {exc}") from exc
    _wait_for_metadata(admin, {s.name: s.partitions for s in wanted}, timeout_s)
    return created


def _wait_for_metadata(admin: AdminClient, partitions: dict[str, int], timeout_s: float) -> None:
    """Creation returns before every partition has a leader; clients fail until then."""
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.list_topics(timeout=timeout_s).topics
        if all(name in topics and len(topics[name].partitions) == n and
               all(p.leader >= 0 for p in topics[name].partitions.values()) for name, n in partitions.items()):
            return
        if time.monotonic() > deadline:
            raise InfraError(f"topics {sorted(partitions)} have no leaders after {timeout_s}s")
        time.sleep(0.2)
