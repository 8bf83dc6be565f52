"""Typed settings, built once at start-up and passed down.

Environment variables use the prefix AIAUDIT_ and `__` for nesting, e.g.
AIAUDIT_KAFKA__BOOTSTRAP_SERVERS=broker:9092, AIAUDIT_CLICKHOUSE__DSN=https://user:pw@ch:8443/audit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from aiaudit.pipeline import names


class _Section(BaseModel):
    """A settings section: immutable once built (a changed copy is made with `Settings.updated`)."""

    model_config = ConfigDict(frozen=True)


def _default_keys_dir() -> Path:
    return Path.home() / ".config" / "aiaudit" / "keys"


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:19092"
    requests_topic: str = names.REQUESTS_TOPIC
    chain_topic: str = names.CHAIN_TOPIC
    dead_letter_topic: str = names.DEAD_LETTER_TOPIC
    alerts_topic: str = names.ALERTS_TOPIC
    incidents_topic: str = names.INCIDENTS_TOPIC
    alert_status_topic: str = names.ALERT_STATUS_TOPIC
    scores_topic: str = names.SCORES_TOPIC
    policies_topic: str = names.POLICIES_TOPIC
    content_topic: str = names.CONTENT_TOPIC
    checkpoints_topic: str = names.CHECKPOINTS_TOPIC
    score_state_topic: str = names.SCORE_STATE_TOPIC
    model_promotions_topic: str = names.MODEL_PROMOTIONS_TOPIC
    deliveries_topic: str = names.DELIVERIES_TOPIC
    delivery_retries_topic: str = names.DELIVERY_RETRIES_TOPIC
    delivery_dlq_topic: str = names.DELIVERY_DLQ_TOPIC
    access_topic: str = names.ACCESS_TOPIC
    erasures_topic: str = names.ERASURES_TOPIC
    rules_topic: str = names.RULES_TOPIC
    key_sets_topic: str = names.KEY_SETS_TOPIC
    partitions: int = Field(default=4, ge=1, le=1024)
    chain_group: str = names.CHAIN_GROUP
    sink_group: str = names.SINK_GROUP
    score_app: str = names.SCORE_APP  # the scoring worker's consumer group (and its transactional ids' prefix)
    deliver_app: str = names.DELIVER_APP  # the delivery agent's Faust app id: its group and its tables' topics
    # The broker's minimum; a killed worker's partitions move on after this long.
    session_timeout_ms: int = 6000
    # Producer compression (none, lz4, zstd, ...). none: on one host the broker's CPU, not the
    # network, is the limit (it decompresses every batch to validate it); lz4 across a network.
    compression: str = "none"
    # Confluent schema registry: emitters frame with its ids, the chain worker resolves them.
    # Unset: Avro single-object encoding (schema fingerprint), no registry needed.
    schema_registry_url: str | None = None
    # Extra librdkafka client properties (security.protocol, sasl.*, ssl.*), given as JSON. Secret
    # (sasl.password, ssl.key.password): never shown with the settings; aiaudit.pipeline.kafka.config unwraps them.
    client_config: dict[str, SecretStr] = Field(default_factory=dict)


class ChainSettings(_Section):
    org: str = "acme"
    env: str = "dev"
    generation: int = Field(default=1, ge=1)
    # Largest accepted event on the wire; larger ones go to the dead-letter topic.
    max_event_bytes: int = Field(default=256 * 1024, ge=1024)
    max_batch_events: int = Field(default=5000, ge=1)
    # How long a worker gathers input for a batch (one transaction per partition per batch): each
    # transaction costs the broker several requests and log writes: 1.0 s instead of 0.2 s (with the
    # sink's flush 0.5 -> 1.0 s) took about 50 us of broker CPU off an event at 2,000 events/s
    # (bench/pipeline_bench.py, docs/benchmarks.md). A due checkpoint waits at most this long too.
    poll_timeout_s: float = Field(default=1.0, gt=0)
    # A signed checkpoint at most this often per chain, and within this long of the last record.
    checkpoint_interval_s: float = Field(default=2.0, gt=0)
    # A chain with nothing new gets a signed time (a heartbeat) this often; `aiaudit verify
    # --max-age` fails a chain whose newest signed time is older than its window's end by more.
    heartbeat_interval_s: float = Field(default=30.0, gt=0)
    # Chain only events signed by a key in the emitter key set (signing.emitter_keys_file); others go
    # to the dead-letter topic as unauthenticated_emitter. false: unsigned events are chained too
    # (their records say so), signed ones are still checked.
    require_emitter_signature: bool = True
    # Chain only status changes (ack, resolve, reopen) signed by a key in the analyst key set for the
    # analyst they name (signing.analyst_keys_file); others go to the dead-letter topic as
    # unauthenticated_analyst, and never reach alerts history. false: every change is chained.
    require_analyst_signature: bool = True
    # The checkpoint signer (`aiaudit signer serve`, its own process and key folder): checkpoints are
    # signed there, and only as extensions of what it signed, so this host alone cannot issue one.
    # Its token comes from AIAUDIT_SIGNER_TOKEN. Unset: the checkpoint key is read in the chain
    # worker's process (signing.checkpoint_key_file), and the worker says so when it starts.
    signer_url: str | None = None


class SigningSettings(_Section):
    keys_dir: Path = Field(default_factory=_default_keys_dir)
    # The private key the chain worker signs with; default: the newest key in keys_dir.
    key_file: Path | None = None
    # The key that signs C2SP checkpoints (separate from the record keys); default:
    # <keys_dir>/checkpoint/checkpoint.key, created by `aiaudit keys generate` when missing.
    checkpoint_key_file: Path | None = None
    # The emitter key set the chain worker and `aiaudit verify` trust; default
    # <keys_dir>/emitters/jwks.json (`aiaudit keys emitter new NAME` makes a key and registers it).
    emitter_keys_file: Path | None = None
    # The analyst key set status changes are checked with; default <keys_dir>/analysts/jwks.json
    # (`aiaudit keys analyst new NAME`). And the key `aiaudit alerts|incidents ack|resolve|reopen` signs
    # with (an analyst's own, made by `aiaudit keys analyst new NAME`; or `--key FILE`).
    analyst_keys_file: Path | None = None
    analyst_key_file: Path | None = None
    # The key that signs the access record of each read this process serves (query, sql, export,
    # proof, verify, alerts, the sink's store API): a console key of the analyst key set (`aiaudit
    # keys analyst new NAME --console`; it signs for whom it serves) or an analyst's own key. Default:
    # analyst_key_file. With neither, reads of the store are refused: every read is recorded.
    reader_key_file: Path | None = None
    # Where the keys kept content is sealed under live (one per subject, one per record), outside
    # Kafka: `aiaudit erase` destroys them. Default <local.state_dir>/content-keys (mode 0700).
    content_keys_dir: Path | None = None
    # The operator key that seals exports (its own folder; default <keys_dir>/../operator/operator.key,
    # made by `aiaudit keys operator new`); verifiers pin its public key (operator.pub, trust file).
    operator_key_file: Path | None = None


class ClickHouseSettings(_Section):
    # chdb:///abs/path for the embedded engine, http(s)://user:password@host:port/db for a
    # server. Unset: embedded chDB in <local.state_dir>/chdb.
    dsn: SecretStr | None = None
    database: str = "aiaudit"


class SinkSettings(_Section):
    max_batch_rows: int = Field(default=5000, ge=1)
    flush_interval_s: float = Field(default=1.0, gt=0)  # measured with the chain's poll (docs/benchmarks.md)
    # Caps on each answer of the read API a sink serves for an embedded store (pipeline/store/api.py).
    api_max_rows: int = Field(default=100_000, ge=1)
    api_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    api_max_seconds: int = Field(default=30, ge=1)


class ScoreSettings(_Section):
    models_dir: Path = Path(".aiaudit/models")
    batch_events: int = Field(default=5000, ge=1)  # at most this many records a batch (one transaction per partition)
    batch_within_s: float = Field(default=0.5, gt=0)  # wait at most this long to fill a batch
    # The gateway's policy file: its vendors' max_level tell the rule detectors what each vendor may
    # receive. Unset: the rules that need it (sensitive data to an unapproved vendor, responses above
    # the route's level) are off, and secrets sent anywhere are flagged instead.
    policy_file: Path | None = None
    # The rules file (YAML: thresholds and rules switched off, docs/soc.md): read at start and again
    # whenever it changes; a file that does not parse never replaces the one in force. Unset: defaults.
    rules_file: Path | None = None
    # The key that signs findings (default <keys_dir>/../scorer/scorer.key, created at first start).
    finding_key_file: Path | None = None


class DeliverSettings(_Section):
    # Where findings go (webhook, Splunk HEC, syslog, chat) with filters, suppression and retries:
    # docs/delivery.md. Secrets are named by environment variable, never written in the file.
    destinations_file: Path | None = None
    # The scoring workers' public keys (scorer.pub files) whose findings are delivered; default the
    # one beside the keys folder. A finding signed by no pinned key is dead-lettered, never delivered.
    finding_keys: list[Path] = Field(default_factory=list)
    # The organisation's daily paging budget (incidents paged a UTC day, docs/soc.md): past half of
    # it only critical incidents page; once spent, pages wait for the day's digest. None: no budget.
    pages_per_day: int | None = Field(default=20, ge=1, le=100_000)
    # Rules whose incidents page whatever the budget (data leaving to where it must not go).
    pages_exempt: list[str] = Field(default_factory=lambda: ["secrets_sent", "sensitive_to_unapproved_vendor"])
    # Request events (`send: requests` destinations): at most this many records of one partition per
    # batch (one POST to a webhook or Splunk HEC; one connection to syslog).
    request_batch: int = Field(default=500, ge=1, le=5000)


class EmitterSettings(_Section):
    # Bounded memory: at most this many events wait for the broker at once.
    max_pending_events: int = Field(default=100_000, ge=1)
    # librdkafka's linger.ms: how long the SDK gathers events into one produce request. Emitting
    # never waits for it (delivery is in the background); 10 ms cost the broker ~5x the CPU an event of
    # 100 ms at 2,000 events/s (docs/benchmarks.md). A caller that waits for each acknowledgement
    # (the OTLP receiver) sets its own.
    linger_ms: int = Field(default=100, ge=0, le=1000)
    # The emitter's Ed25519 key (<name>.<kid8>.key, made by `aiaudit keys emitter new NAME`): every
    # event is signed with it, and the chain worker refuses events no registered key signed.
    key_file: Path | None = None
    # false: send unsigned events (only for a chain worker with require_emitter_signature=false).
    sign: bool = True


class GatewaySettings(_Section):
    host: str = "127.0.0.1"  # bind to all interfaces only on purpose
    port: int = Field(default=8400, ge=1, le=65535)
    config_file: Path = Path("gateway.yaml")  # upstreams, hashed API keys, OIDC issuer
    policy_file: Path = Path("policy.yaml")  # reloaded while running; a bad file keeps the old one
    policy_reload_s: float = Field(default=2.0, gt=0)
    gateway_id: str | None = None  # default: the host name
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Fail-closed routes refuse requests once an event has waited this long for the broker.
    max_unacked_s: float = Field(default=5.0, gt=0)


class LiteLLMSettings(_Section):
    # The LiteLLM proxy callback (pipeline/litellm, docs/litellm.md). The policy behind each event is
    # the proxy's config with its secrets stripped: its file (default: the one the proxy was started
    # with, --config), published as a bundle under this policy id.
    config_file: Path | None = None
    policy_id: str = "litellm-proxy"
    retention_scope: str = "standard"
    # What is kept of a request, as a gateway route's `content`: none; commitments (HMACs of the
    # prompt and response in the event, their key sealed to the content topic); full (the text too,
    # sealed under the person's and the record's keys: `aiaudit erase` destroys them).
    content: Literal["none", "commitments", "full"] = "commitments"
    retention_days: int = Field(default=30, ge=1, le=3650)  # how long kept content lives
    # Events waiting to be signed and sent (while the broker is away, too); beyond it, new events are
    # dropped, counted (aiaudit_litellm_dropped_total) and logged, never the request held up.
    max_buffered_events: int = Field(default=10_000, ge=1, le=1_000_000)
    # ... and at most this many characters of prompt and response text among them (memory is bounded
    # by what is held, not only by how many).
    max_buffered_chars: int = Field(default=64 * 1024 * 1024, ge=1024)
    # Serve Prometheus metrics on this port (the callback's counters); off when unset.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)


class OtlpSettings(_Section):
    # The OTLP/HTTP receiver (pipeline/otlp, docs/otlp.md): OpenTelemetry GenAI spans as signed events.
    host: str = "127.0.0.1"  # bind to all interfaces only on purpose (behind TLS: tokens travel in a header)
    port: int = Field(default=4318, ge=1, le=65535)  # OTLP/HTTP's registered port
    # Where the receiver keeps its senders (senders.json: names and token hashes, `aiaudit otlp sender
    # add NAME`) and the event ids of the spans it recorded; default <local.state_dir>/otlp.
    state_dir: Path | None = None
    senders_file: Path | None = None  # default <state_dir>/senders.json
    policy_id: str = "otlp-observed"
    retention_scope: str = "standard"
    # How long a span whose messages have not arrived waits for them in its own request (the
    # instrumentation sends content as log events, in other requests); 0 when senders capture none.
    content_wait_ms: int = Field(default=1500, ge=0, le=8000)
    content_hold_s: float = Field(default=60.0, gt=0, le=3600)  # content kept for a span that has not come yet
    max_held_chars: int = Field(default=64 * 1024 * 1024, ge=1024)  # ... at most this much of it
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)  # after decompression
    delivery_timeout_s: float = Field(default=8.0, gt=0, le=60)  # then 503: the sender sends again
    retry_after_s: int = Field(default=5, ge=1, le=300)
    dedupe_keep: int = Field(default=1_000_000, ge=1000)  # span event ids remembered (in memory and on disk)
    # Serve Prometheus metrics on this port; off when unset.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)


class ConsoleSettings(_Section):
    host: str = "127.0.0.1"  # bind to all interfaces only on purpose (behind TLS: set secure_cookies)
    port: int = Field(default=8700, ge=1, le=65535)
    # The console's key (`aiaudit keys analyst new NAME --console`): it signs the access record of
    # every page view and every acknowledgement, each for the person signed in.
    key_file: Path | None = None
    # The trust file a record's checks run against (`aiaudit trust init --out FILE`); required.
    trust_file: Path | None = None
    # Console accounts (`aiaudit console account add NAME --role ROLE`); default
    # <local.state_dir>/console/accounts.json (0600).
    accounts_file: Path | None = None
    # Sign-in with an OIDC provider instead of (or beside) console accounts: the provider's issuer
    # URL, this console's client id and secret, and the claim that carries console roles.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_roles_claim: str = "aiaudit_roles"
    # Where the browser reaches the console (the OIDC redirect and the Origin checked on every change);
    # default http://<host>:<port>.
    public_url: str | None = None
    # Cookies marked Secure (https only): default when public_url is https.
    secure_cookies: bool | None = None
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_max_hours: int = Field(default=12, ge=1, le=7 * 24)


class LocalSettings(_Section):
    # Project-local state of the embedded stack: Kafka data, logs, pid files.
    state_dir: Path = Path(".aiaudit")
    kafka_port: int = 19092
    controller_port: int = 19093
    kafka_heap: str = "1g"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=names.ENV_PREFIX, env_nested_delimiter="__", extra="ignore", frozen=True
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    chain: ChainSettings = Field(default_factory=ChainSettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)
    score: ScoreSettings = Field(default_factory=ScoreSettings)
    deliver: DeliverSettings = Field(default_factory=DeliverSettings)
    emitter: EmitterSettings = Field(default_factory=EmitterSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    litellm: LiteLLMSettings = Field(default_factory=LiteLLMSettings)
    otlp: OtlpSettings = Field(default_factory=OtlpSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)

    def updated(self, **sections: dict[str, Any]) -> Settings:
        """A copy with some fields of some sections changed, e.g. `updated(gateway={"port": 8401})`;
        the settings themselves never change once built."""
        changes = {name: getattr(self, name).model_copy(update=fields) for name, fields in sections.items()}
        return self.model_copy(update=changes)

    def content_keys_dir(self) -> Path:
        """Where the keys kept content is sealed under live (contract/subject_keys.py)."""
        return self.signing.content_keys_dir or self.local.state_dir / "content-keys"

    def clickhouse_dsn(self) -> str:
        if self.clickhouse.dsn is not None:
            return self.clickhouse.dsn.get_secret_value()
        return f"chdb://{(self.local.state_dir / 'chdb').resolve()}"
