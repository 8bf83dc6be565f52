"""How far the pipeline has got, from the broker alone (no ClickHouse needed).

The chain stage is done with a partition when its committed input offset reaches the end of
the requests topic (an evidence kind's chain worker, when it passes the last message of its
input topic); the sink is done when its committed offset passes the last committed
message of every topic it stores (aiaudit.pipeline.sink.rows.sink_topics; their ends hold
transaction markers, so the last data message is read rather than the high watermark trusted).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiaudit.infra.topics import topic_specs
from aiaudit.pipeline.chain.kinds import KINDS
from aiaudit.pipeline.kafka.io import committed_offsets, end_offsets, position, read_tails
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.sink.rows import sink_topics


@dataclass(frozen=True)
class Lag:
    chain: int  # input messages not yet chained or dead-lettered
    sink: int  # partitions whose committed output is not yet in ClickHouse
    evidence: int = 0  # partitions of the evidence kinds' input topics not yet chained

    @property
    def done(self) -> bool:
        return self.chain == 0 and self.sink == 0 and self.evidence == 0


def chain_lag(settings: Settings) -> int:
    """Input messages not yet chained or dead-lettered (one offsets read: cheap to poll)."""
    k = settings.kafka
    n = k.partitions
    ends = end_offsets(settings, k.requests_topic, n)
    chained = committed_offsets(settings, k.chain_group, k.requests_topic, n)
    return sum(max(0, ends[p] - max(chained[p], 0)) for p in range(n))


def evidence_lag(settings: Settings) -> int:
    """Partitions of the evidence kinds' input topics whose last message is not yet chained by their
    chain workers (the last data message is read: transactional writers, like the scorer, end a
    partition with a commit marker the high watermark counts)."""
    k = settings.kafka
    partitions = {spec.name: spec.partitions for spec in topic_specs(settings)}
    behind = 0
    for kind in KINDS:
        topic = kind.input_topic(k)
        n = partitions[topic]
        chained = committed_offsets(settings, kind.group(k), topic, n)
        for p, last in read_tails(settings, topic, list(range(n))).items():
            if last is not None and chained[p] <= position(last)[2]:
                behind += 1
    return behind


def sink_tails(settings: Settings) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the offset of its last committed message, for every partition of the
    sink's topics that has one (one tail read per topic, all its partitions at once)."""
    k = settings.kafka
    partitions = {spec.name: spec.partitions for spec in topic_specs(settings)}
    tails: dict[tuple[str, int], int] = {}
    for topic in (t.topic for t in sink_topics(k)):
        for p, last in read_tails(settings, topic, list(range(partitions[topic]))).items():
            if last is not None:
                tails[(topic, p)] = position(last)[2]
    return tails


def sink_behind(settings: Settings, tails: dict[tuple[str, int], int]) -> int:
    """Partitions whose message at the offset `tails` gives is not yet in ClickHouse."""
    k = settings.kafka
    partitions = {spec.name: spec.partitions for spec in topic_specs(settings)}
    behind = 0
    for topic in {t for t, _ in tails}:
        sunk = committed_offsets(settings, k.sink_group, topic, partitions[topic])
        behind += sum(1 for (t, p), last in tails.items() if t == topic and sunk[p] <= last)
    return behind


def sink_lag(settings: Settings) -> int:
    """Partitions of the sink's topics whose last committed message is not yet in ClickHouse."""
    return sink_behind(settings, sink_tails(settings))


def pipeline_lag(settings: Settings) -> Lag:
    return Lag(chain_lag(settings), sink_lag(settings), evidence_lag(settings))


def scoring_done(settings: Settings) -> bool:
    """True when the scoring worker has committed past the last record of every chain partition."""
    k = settings.kafka
    scored = committed_offsets(settings, k.score_app, k.chain_topic, k.partitions)
    for p, last in read_tails(settings, k.chain_topic, list(range(k.partitions))).items():
        if last is not None and scored[p] <= position(last)[2]:
            return False
    return True


def wait_until_drained(settings: Settings, *, timeout_s: float, report: Callable[[Lag], None] | None = None,
                       poll_s: float = 1.0) -> Lag:
    """Poll until every accepted input is chained and sunk, or the timeout passes; returns the last lag.

    Once nothing waits to be chained, the sink is held to the ends of its topics as they were then:
    running chain workers sign a heartbeat every interval, and a sink always one heartbeat behind a
    moving end would never be seen done. Input accepted later starts the wait for the chain again."""
    deadline = time.monotonic() + timeout_s
    target: dict[tuple[str, int], int] | None = None
    while True:
        chain, evidence = chain_lag(settings), evidence_lag(settings)
        if chain == 0 and evidence == 0:
            target = sink_tails(settings) if target is None else target
            lag = Lag(chain, sink_behind(settings, target), evidence)
        else:
            target = None
            lag = Lag(chain, sink_lag(settings), evidence)
        if report:
            report(lag)
        if lag.done or time.monotonic() > deadline:
            return lag
        time.sleep(poll_s)
