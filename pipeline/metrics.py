"""Prometheus metrics of the workers: the one owner of every metric name and label.

Names follow Prometheus's conventions: the `aiaudit_` prefix, base units (`_seconds`), counters
ending `_total`, times as `_timestamp_seconds` gauges (an age is `time() - x` in PromQL, so a
stopped process shows as growing age rather than a frozen one). No label takes an unbounded
value: `worker` is the kind of process (chain, sink, score), `kind` an evidence kind (a fixed set),
`decision` one of the contract's four,
`severity` one of SEVERITIES,
`partition` an input partition, `topic` a configured topic's name, `outcome` a delivery outcome (OUTCOMES), `chain` a chain's topic and
partition (chain_label), `witness` a configured witness's name, `page` a console route,
`reason` a dead-letter reason, which is held to a short
lowercase word and to at most MAX_REASONS distinct values ("other" beyond); never an actor,
model, route or origin.

A worker serves them on `--metrics-port` (127.0.0.1 unless `AIAUDIT_METRICS__HOST` says
otherwise; off when no port is given): `aiaudit worker chain --metrics-port 9401`. The alerting
rules over them are infra/prometheus/rules.yml, checked by promtool in the tests.
"""

from __future__ import annotations

import re
import threading

from prometheus_client import Counter, Gauge, Histogram, start_http_server

MAX_REASONS = 32
_REASON = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_reasons: set[str] = set()
_lock = threading.Lock()

EVENTS_IN = Counter("aiaudit_events_in", "Input messages a worker took in (chained or dead-lettered; rows read by "
                    "the sink)", ["worker", "kind"])
EVENTS_OUT = Counter("aiaudit_events_out", "Records chained by a chain worker; rows stored by the sink", ["worker", "kind"])
DEAD_LETTERS = Counter("aiaudit_dead_letters", "Input messages refused into the dead-letter topic, by reason",
                       ["worker", "kind", "reason"])
TRANSACTION_ABORTS = Counter("aiaudit_transaction_aborts", "Kafka transactions aborted (the batch is read again)",
                             ["worker", "kind"])
BATCH_SECONDS = Histogram("aiaudit_batch_duration_seconds", "Time to process one batch, its transaction included",
                          ["worker", "kind"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
FINDINGS = Counter("aiaudit_findings", "Findings raised by the scoring worker, by severity", ["severity"])
INCIDENTS = Counter("aiaudit_incident_updates", "Incident opens and updates raised by the scoring worker, by severity",
                    ["severity"])
GATEWAY_REQUESTS = Counter("aiaudit_gateway_requests", "Requests the gateway decided and recorded, by decision",
                           ["decision"])
GATEWAY_UNRECORDED = Counter("aiaudit_gateway_unrecorded", "Requests whose evidence (the event) or kept content could not "
                             "be handed over, by what was lost", ["what"])
SEVERITIES = ("informational", "low", "medium", "high", "critical")
DELIVERIES = Counter("aiaudit_deliveries", "Delivery attempts of findings and incidents to where analysts work, by "
                     "outcome", ["outcome"])
WITNESS_SUBMISSIONS = Counter("aiaudit_witness_submissions", "Checkpoints sent to a witness by the submitter, by "
                              "outcome (cosigned, already, refused, unreachable)", ["witness", "outcome"])
COSIGNED_TIME = Gauge("aiaudit_witness_cosigned_timestamp_seconds", "When a witness last cosigned (or confirmed) this "
                      "chain's newest signed checkpoint, as the submitter saw it (Unix time)", ["witness", "chain"])
WITNESS_REQUESTS = Counter("aiaudit_witness_requests", "add-checkpoint requests a witness answered, by HTTP status",
                           ["code"])
CONSOLE_VIEWS = Counter("aiaudit_console_requests", "Console requests answered, by page and HTTP status",
                        ["page", "code"])
CONSOLE_SECONDS = Histogram("aiaudit_console_request_duration_seconds", "Time to answer a console request, its access "
                            "record included", ["page"], buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 10))
GATEWAY_SECONDS = Histogram("aiaudit_gateway_request_duration_seconds", "Time to answer a request at the gateway, "
                            "the vendor's answer included, by decision", ["decision"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
INPUT_LAG = Gauge("aiaudit_input_lag_messages", "Messages of an input partition this worker holds that it has not "
                  "yet read: the partition's end (as of the worker's last fetch) less the worker's position",
                  ["worker", "topic", "partition"])
LITELLM_EVENTS = Counter("aiaudit_litellm_events", "LiteLLM proxy requests handed to the emitter as evidence, by "
                         "decision", ["decision"])
LITELLM_DROPPED = Counter("aiaudit_litellm_dropped", "LiteLLM proxy requests NOT recorded as evidence, by reason: "
                          "buffer_full, not_acknowledged, invalid, no_payload, no_emitter; content: its content not kept", ["reason"])
OTLP_SPANS = Counter("aiaudit_otlp_spans", "Spans the OTLP receiver was sent, by outcome: recorded (an event "
                     "acknowledged by the broker), duplicate (recorded before), rejected (not a GenAI operation)",
                     ["outcome"])
OTLP_LOG_RECORDS = Counter("aiaudit_otlp_log_records", "Log records the OTLP receiver was sent, by outcome: held "
                           "(content for a span), late (its span recorded already), rejected (not GenAI content), "
                           "expired and let_go (held content whose span never came, or let go for room)", ["outcome"])
OTLP_REFUSED = Counter("aiaudit_otlp_requests_refused", "OTLP requests answered with an error, by reason: "
                       "unauthenticated, media_type, too_large, malformed, broker_unavailable", ["reason"])
OUTCOMES = ("delivered", "failed", "retrying", "suppressed", "dead_lettered", "held")
CHECKPOINT_TIME = Gauge("aiaudit_checkpoint_signed_timestamp_seconds",
                        "When the chain of this kind and partition last had a checkpoint or heartbeat signed "
                        "(Unix time)", ["kind", "partition"])


def reason_label(reason: str) -> str:
    """A dead-letter reason as a label value: itself when it is a short lowercase word and one of
    the first MAX_REASONS seen, "other" otherwise (a label never grows without bound)."""
    if not _REASON.match(reason):
        return "other"
    with _lock:
        if reason in _reasons:
            return reason
        if len(_reasons) < MAX_REASONS:
            _reasons.add(reason)
            return reason
    return "other"


def outcome_label(outcome: object) -> str:
    """A delivery outcome as a label value: one of OUTCOMES, "other" otherwise."""
    text = str(outcome)
    return text if text in OUTCOMES else "other"


def chain_label(origin: str) -> str:
    """A chain as a label value: its topic and partition (`ai.requests/p3`), never its org, env or
    generation, so a restarted generation is the same series and the set stays that of the topics."""
    parts = origin.split("/")
    if len(parts) >= 5 and parts[-2].startswith("p") and parts[-2][1:].isdigit():
        return f"{parts[-3][:64]}/{parts[-2]}"
    return "other"


def severity_label(severity: object) -> str:
    """A severity as a label value: one of SEVERITIES (lowercase), "other" otherwise."""
    text = str(severity).lower()
    return text if text in SEVERITIES else "other"


def serve(port: int | None, host: str = "127.0.0.1") -> None:
    """Serve /metrics on host:port in a daemon thread (nothing when port is None or 0)."""
    if port:
        start_http_server(port, addr=host)


def serve_processes(port: int, host: str, folder: str) -> None:
    """Serve on host:port the metrics of the processes that write them to `folder` (prometheus_client's
    multiprocess mode: each process has PROMETHEUS_MULTIPROC_DIR=folder when it imports it), summed."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)
