"""librdkafka client settings, built from `Settings` in one place (pure).

Every Kafka client aiaudit makes (workers, emitters, the gateway, tools) takes its
properties from a function here, so a deployment's security settings (`client_config`:
security.protocol, sasl.*, ssl.*) reach every client and each client kind is configured the
same everywhere. `client_config` values are SecretStr in the settings (a password there is
never printed with the settings) and are unwrapped only here, into the dict handed to
librdkafka.
"""

from __future__ import annotations

import logging
from typing import Any

from aiaudit.pipeline.logs import RepeatLimit
from aiaudit.pipeline.settings import Settings

Config = dict[str, Any]

# librdkafka's own log lines go through Python logging under this name (not raw to stderr), at
# WARNING and above, and each distinct line at most once a minute with a count of the repeats: a
# broker that is down makes it repeat the same connection error on every retry.
LOG = logging.getLogger("aiaudit.kafka")
LOG.setLevel(logging.WARNING)
# A broker that has just started answers "coordinator load in progress" and librdkafka retries on
# its own: a notice of a retry, not a problem to show.
TRANSIENT = ("Coordinator load in progress",)
LOG.addFilter(lambda record: not any(t in record.getMessage() for t in TRANSIENT))
LOG.addFilter(RepeatLimit())


def client(settings: Settings, **extra: Any) -> Config:
    """Properties every client of this deployment shares, plus `extra` (last wins)."""
    k = settings.kafka
    secrets = {name: value.get_secret_value() for name, value in k.client_config.items()}
    return {"bootstrap.servers": k.bootstrap_servers, "logger": LOG, **secrets, **extra}


def consumer(settings: Settings, group: str, *, read_committed: bool = True, **extra: Any) -> Config:
    """A consumer that commits only what its owner says. read_committed: records of aborted chain
    transactions are never seen (every stage behind the chain worker reads this way)."""
    return client(settings, **{
        "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "enable.partition.eof": False, **extra,
    })


def stage_consumer(settings: Settings, group: str, **extra: Any) -> Config:
    """A worker's group consumer: the deployment's session timeout, fetches sized for events."""
    k = settings.kafka
    return consumer(settings, group, **{
        "session.timeout.ms": k.session_timeout_ms, "heartbeat.interval.ms": max(500, k.session_timeout_ms // 4),
        "fetch.message.max.bytes": settings.chain.max_event_bytes * 8, **extra,
    })


def producer(settings: Settings, **extra: Any) -> Config:
    """An idempotent producer acknowledged by all in-sync replicas: the broker keeps each message
    once and in order per partition."""
    return client(settings, **{"enable.idempotence": True, "acks": "all",
                               "compression.type": settings.kafka.compression, **extra})


def transactional_producer(settings: Settings, transactional_id: str, **extra: Any) -> Config:
    """A producer whose writes and input offsets commit together. A new producer with the same
    transactional id fences the old one (a zombie after a rebalance or a restart)."""
    return producer(settings, **{"transactional.id": transactional_id, "transaction.timeout.ms": 60000, **extra})


BROKER_DOWN_CODES = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_MSG_TIMED_OUT")


def consumer_problem(settings: Settings, who: str, error: Any) -> str:
    """A consumer error in our words: a broker that cannot be reached is named with its address."""
    if error.name() in BROKER_DOWN_CODES:
        return f"{who}: broker unreachable at {settings.kafka.bootstrap_servers}; retrying ({error.str()})"
    return f"{who}: {error}"


def warn_if_unreachable(settings: Settings, consumer: Any, who: str, timeout_s: float = 5.0) -> None:
    """Say in our words, once, when no broker answers a starting worker (it keeps retrying)."""
    try:
        consumer.list_topics(timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001  # KafkaException; the worker goes on and the client retries
        LOG.warning("%s: broker unreachable at %s (%s); retrying until it answers", who,
                    settings.kafka.bootstrap_servers, exc.args[0].str() if exc.args and hasattr(exc.args[0], "str")
                    else exc)
