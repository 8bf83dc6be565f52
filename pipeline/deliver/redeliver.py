"""Re-driving dead-lettered deliveries, the Kafka side: read the dead-letter topic, plan (pure,
deliver/redrive.py), write one more attempt each to the delivery agent's retries topic."""

from __future__ import annotations

import time

import orjson
from confluent_kafka import Producer

from aiaudit.pipeline.deliver.redrive import Plan, plan_redrives
from aiaudit.pipeline.errors import InfraError
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.kafka.io import read_partitions
from aiaudit.pipeline.settings import Settings


def plan_from_dead_letters(settings: Settings, *, by: str, destination: str | None = None,
                           finding_uid: str | None = None) -> Plan:
    """The newest dead letter of each delivery, as re-drives (nothing written)."""
    k = settings.kafka
    # The dead-letter topic has one partition (infra/topics.py): its letters in the order written.
    dead = (m.value() for m in read_partitions(settings, k.delivery_dlq_topic, [0], timeout_s=120))
    return plan_redrives(dead, k.partitions, now=time.time(), by=by, destination=destination,
                         finding_uid=finding_uid)


def write_redrives(settings: Settings, plan: Plan) -> None:
    """Each re-drive to the retries topic, in the partition the agent's state for it lives in."""
    k = settings.kafka
    producer = Producer(kafka_config.producer(settings))
    for r in plan.redrives:
        producer.produce(k.delivery_retries_topic, key=r.delivery_uid.encode(), value=orjson.dumps(r.job),
                         partition=r.partition)
    if producer.flush(30):
        raise InfraError(f"re-drives not all written to {k.delivery_retries_topic} within 30 s (broker down?); "
                         "running the command again is harmless")
