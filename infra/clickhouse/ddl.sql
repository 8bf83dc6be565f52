-- aiaudit ClickHouse DDL. `{db}` is replaced by the configured database name.
-- Runs on a ClickHouse server and on embedded chDB alike; every statement is idempotent.

CREATE DATABASE IF NOT EXISTS {db};

-- The evidence table: one row per chain record, append-only.
-- Plain MergeTree ordered by (origin, seq): a ReplacingMergeTree would silently hide a fork.
-- `payload` (exact signed bytes, UTF-8 JSON) and `sig` (base64) are verbatim; the typed
-- columns exist for queries and the verifier checks them against the payload.
-- Redelivery can add an exact duplicate row; queries deduplicate with LIMIT 1 BY.
CREATE TABLE IF NOT EXISTS {db}.evidence
(
    origin            LowCardinality(String) COMMENT 'the chain: <org>/<env>/<input topic>/p<partition>/g<generation>',
    seq               UInt64 COMMENT 'position in the chain, from 0',
    leaf_hash         String COMMENT 'hex SHA-256(0x00 || payload || sig): the Merkle leaf and the next record''s prev',
    prev              String COMMENT 'leaf hash of the record before (64 zeros at seq 0)',
    kid               LowCardinality(String) COMMENT 'RFC 7638 thumbprint of the Ed25519 key that signed the record',
    ts                DateTime64(6, 'UTC') COMMENT 'when the request was decided (the event''s occurred_at)',
    src_topic         LowCardinality(String) COMMENT 'input topic the event was read from',
    src_partition     UInt32 COMMENT 'input partition',
    src_offset        UInt64 COMMENT 'input offset',
    event_id          String COMMENT 'the emitter''s id for the request (a gateway answer''s X-Request-Id)',
    emitter_id        String COMMENT 'the SDK instance or gateway replica that emitted the event',
    emitter_seq       UInt64 COMMENT 'the emitter''s own number for the event, from 0',
    actor_type        LowCardinality(String) COMMENT 'workforce, agent or service',
    actor_id          String COMMENT 'the authenticated identity (never a caller-supplied label)',
    on_behalf_of      Nullable(String) COMMENT 'for an agent: the person it acted for',
    role              LowCardinality(String) COMMENT 'role in effect when the policy decided',
    route             LowCardinality(String) COMMENT 'gateway route or application use case',
    operation         LowCardinality(String) COMMENT 'chat, embeddings ... (OTel gen_ai.operation.name)',
    provider          LowCardinality(Nullable(String)) COMMENT 'the AI vendor (OTel gen_ai.provider.name), NULL when the request was refused before any vendor',
    model             LowCardinality(String) COMMENT 'requested model (OTel gen_ai.request.model)',
    prompt_level      LowCardinality(String) COMMENT 'data classification of the prompt: public, internal, confidential, restricted',
    prompt_categories Array(String) COMMENT 'what the classifier found in the prompt, e.g. pii.email, secret.aws_key',
    response_level    Nullable(String) COMMENT 'classification of the response, NULL when there was none',
    policy_id         LowCardinality(String) COMMENT 'the policy bundle that decided',
    policy_version    LowCardinality(String) COMMENT '<declared version>+sha256.<hash>: `aiaudit gateway policy --version` prints it',
    decision          LowCardinality(String) COMMENT 'allow, deny, redact or reroute',
    retention_scope   LowCardinality(String) COMMENT 'retention class of any content kept for the request',
    input_tokens      UInt64 COMMENT 'OTel gen_ai.usage.input_tokens',
    output_tokens     UInt64 COMMENT 'OTel gen_ai.usage.output_tokens',
    latency_us        UInt64 COMMENT 'vendor latency in microseconds',
    payload           String COMMENT 'the exact signed bytes (RFC 8785 JSON): the evidence, every column above is checked against it',
    sig               String COMMENT 'base64 Ed25519 signature over "aiaudit/record/v1\n" || payload',
    ingested_at       DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'when the sink stored the row (not evidence)',
    decision_reasons  Array(String) DEFAULT JSONExtract(payload, 'event', 'decision_reasons', 'Array(String)')
                      COMMENT 'why the policy decided so, in readable sentences',
    trace_id          Nullable(String) DEFAULT JSONExtract(payload, 'event', 'trace_id', 'Nullable(String)')
                      COMMENT 'W3C trace id of the request, to join with application traces',
    INDEX idx_actor actor_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_behalf on_behalf_of TYPE bloom_filter GRANULARITY 4,
    INDEX idx_ts ts TYPE minmax GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (origin, seq)
COMMENT 'aiaudit evidence: one row per chain record (duplicates of a redelivery possible: use the records view)';

-- Added after the table first shipped: stores created before get the columns here, filled for
-- old rows from the signed payload itself (so they hold what the payload says, as the verifier checks).
ALTER TABLE {db}.evidence ADD COLUMN IF NOT EXISTS
    decision_reasons Array(String) DEFAULT JSONExtract(payload, 'event', 'decision_reasons', 'Array(String)');
ALTER TABLE {db}.evidence ADD COLUMN IF NOT EXISTS
    trace_id Nullable(String) DEFAULT JSONExtract(payload, 'event', 'trace_id', 'Nullable(String)');
ALTER TABLE {db}.evidence MODIFY COLUMN IF EXISTS provider LowCardinality(Nullable(String));

-- For analysts: each record once (an exact duplicate row from a redelivery collapsed; two
-- different records at one seq, a fork, both kept, so it stays visible), without the signed bytes.
CREATE VIEW IF NOT EXISTS {db}.records AS
SELECT * EXCEPT (payload, sig, ingested_at) FROM {db}.evidence LIMIT 1 BY origin, seq, leaf_hash;

-- The chains' tree states, one row per committed batch (pipeline/chain/checkpoint.py): size,
-- root and compact range; the subtrees completed at levels 8, 16, 24 ... (for proofs from
-- stored hashes); when one was due, the signed C2SP checkpoint note; and the log's signed time
-- (tlog-cosignature) with each checkpoint and each heartbeat. Append-only.
CREATE TABLE IF NOT EXISTS {db}.checkpoints
(
    origin        LowCardinality(String),
    size          UInt64,
    root          String,
    compact_range Array(String),
    tile_levels   Array(UInt8),
    tile_indexes  Array(UInt64),
    tile_hashes   Array(String),
    note          Nullable(String),
    issued_at     DateTime64(6, 'UTC'),
    ingested_at   DateTime64(3, 'UTC') DEFAULT now64(3),
    timestamp     Nullable(String)
)
ENGINE = MergeTree
ORDER BY (origin, size);

-- The log's signed times (a tlog-cosignature line by the checkpoint key, with each checkpoint and
-- each heartbeat), added after the table first shipped: stores created before get the column here.
ALTER TABLE {db}.checkpoints ADD COLUMN IF NOT EXISTS timestamp Nullable(String);

-- A chain's signed final checkpoint (it is closed at that size: an earlier generation's chain),
-- added after the table first shipped.
ALTER TABLE {db}.checkpoints ADD COLUMN IF NOT EXISTS final Nullable(String);

-- Witness cosignatures (C2SP tlog-cosignature lines) of signed checkpoints, as returned by the
-- witnesses and checked under their pinned keys (pipeline/witness/submit.py). Append-only.
CREATE TABLE IF NOT EXISTS {db}.cosignatures
(
    origin      LowCardinality(String),
    size        UInt64,
    witness     LowCardinality(String),
    cosignature String,
    cosigned_at DateTime('UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (origin, size, witness);

-- Rejected input, kept whole (base64) with the reason, for reconciliation and follow-up.
CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    src_topic     LowCardinality(String),
    src_partition UInt32,
    src_offset    UInt64,
    reason        LowCardinality(String),
    detail        String,
    message_b64   String,
    ingested_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (src_topic, src_partition, src_offset);

-- Anomaly scores: one row per scored record and model version (replays dedupe at query time).
CREATE TABLE IF NOT EXISTS {db}.scores
(
    origin        LowCardinality(String),
    seq           UInt64,
    leaf_hash     String,
    actor_id      String,
    ts            DateTime64(6, 'UTC'),
    score         Float64,
    severity      LowCardinality(String),
    model_version LowCardinality(String),
    ingested_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (origin, seq, model_version);

-- OCSF Detection Findings (class 2004), kept whole, with columns to find them by.
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    finding_uid   String,
    detected_at   DateTime64(3, 'UTC'),
    severity      LowCardinality(String),
    actor_id      String,
    origin        LowCardinality(String),
    seq           UInt64,
    leaf_hash     String,
    score         Float64,
    model_version LowCardinality(String),
    finding       String,
    ingested_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (detected_at, finding_uid);

-- Incident updates (OCSF Incident Findings, class 2005), kept whole: one row per update a scored
-- batch made (create, update, close), the latest (most findings) being the incident as it stands.
-- Status changes (ack, resolve) go to alert_status under the incident uid.
CREATE TABLE IF NOT EXISTS {db}.incidents
(
    incident_uid  String,
    activity      LowCardinality(String),
    updated_at    DateTime64(3, 'UTC'),
    identity      String,
    family        LowCardinality(String),
    severity      LowCardinality(String),
    score         Float64,
    findings      UInt32,
    opened_at     DateTime64(3, 'UTC'),
    window_start  DateTime64(3, 'UTC'),
    last_seen     DateTime64(3, 'UTC'),
    page          Bool,
    previous      String,
    incident      String,
    ingested_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (incident_uid, findings, updated_at);

-- Alert status history, append-only: open -> acknowledged -> resolved, with who and when.
CREATE TABLE IF NOT EXISTS {db}.alert_status
(
    finding_uid String,
    status      LowCardinality(String),
    actor       String,
    note        String,
    at          DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (finding_uid, at);

-- Deliveries of findings to where analysts work (webhook, Splunk HEC, syslog, chat): one row per
-- attempt and outcome (delivered with the receiver's answer, failed, suppressed, dead-lettered).
CREATE TABLE IF NOT EXISTS {db}.deliveries
(
    delivery_uid String,
    finding_uid  String,
    destination  LowCardinality(String),
    outcome      LowCardinality(String),
    attempt      UInt16,
    at           DateTime64(3, 'UTC'),
    status       String,
    response     String,
    detail       String,
    ingested_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (finding_uid, at);

-- Model promotions as the scoring workers first used them: which model scored from when, its
-- artifact hash, who promoted it and when, and the signed live.json itself (re-verifiable with the
-- operator's public key). One row per worker that picked it up; queries take one per promotion.
CREATE TABLE IF NOT EXISTS {db}.model_promotions
(
    version          String,
    sha256           String,
    promoted_by      String,
    promoted_at      DateTime64(3, 'UTC'),
    kid              String,
    live_json        String,
    first_scored_at  DateTime64(3, 'UTC'),
    scorer           String,
    ingested_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (promoted_at, version);

-- Policy bundles as loaded by gateways: the exact policy behind any record's policy_version.
-- A bundle loaded by several replicas appears once per load; queries take one per version.
CREATE TABLE IF NOT EXISTS {db}.policies
(
    policy_id        LowCardinality(String),
    policy_version   String,
    declared_version String,
    canonical_json   String,
    source_yaml      String,
    loaded_at        DateTime64(3, 'UTC'),
    gateway_id       String,
    ingested_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (policy_id, policy_version, loaded_at);

-- Prompt/response content and commitment keys, apart from the chain, deleted at expiry.
-- Deleting a row leaves the chain verifiable; only the proof of what was said goes.
CREATE TABLE IF NOT EXISTS {db}.content
(
    event_id        String,
    retention_scope LowCardinality(String),
    expires_at      DateTime64(3, 'UTC'),
    key_b64         String,
    prompt          Nullable(String),
    response        Nullable(String),
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY event_id
TTL toDateTime(expires_at) DELETE;

-- Every evidence kind but AI requests, chained like them (record format v2: pipeline/chain/record_v2.py):
-- findings, incidents, status changes, dead letters, deliveries, delivery dead letters, model
-- promotions, policy bundles. One row per chain record, append-only, exact signed bytes verbatim;
-- the typed columns are checked against the payload by the verifier. Plain MergeTree, as evidence.
CREATE TABLE IF NOT EXISTS {db}.kind_evidence
(
    kind          LowCardinality(String) COMMENT 'what the record is evidence of (finding, incident, status_change ...)',
    origin        LowCardinality(String) COMMENT 'the chain: <org>/<env>/<input topic>/p<partition>/g<generation>',
    seq           UInt64 COMMENT 'position in the chain, from 0',
    leaf_hash     String COMMENT 'hex SHA-256(0x00 || payload || sig): the Merkle leaf and the next record''s prev',
    prev          String COMMENT 'leaf hash of the record before (64 zeros at seq 0)',
    kid           LowCardinality(String) COMMENT 'RFC 7638 thumbprint of the Ed25519 key that signed the record',
    ts            DateTime64(6, 'UTC') COMMENT 'the Kafka timestamp of the message chained',
    src_topic     LowCardinality(String) COMMENT 'input topic the message was read from',
    src_partition UInt32 COMMENT 'input partition',
    src_offset    UInt64 COMMENT 'input offset',
    payload       String COMMENT 'the exact signed bytes (RFC 8785 JSON, its event the message in base64)',
    sig           String COMMENT 'base64 Ed25519 signature over "aiaudit/record/v2/<kind>\n" || payload',
    ingested_at   DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'when the sink stored the row (not evidence)'
)
ENGINE = MergeTree
ORDER BY (origin, seq)
COMMENT 'aiaudit evidence of every kind but requests: one row per chain record (duplicates of a redelivery possible)';

-- Every read of evidence through aiaudit (query, sql, export, proof, verify, alerts, the store API),
-- as the access chain holds it: who, through what, when, the filter or statement, how many rows and
-- their digest. Filled from the chain only; verify holds it row for row to the chained records.
CREATE TABLE IF NOT EXISTS {db}.access_log
(
    access_id    String,
    at           DateTime64(3, 'UTC'),
    principal    String,
    via          String,
    op           LowCardinality(String),
    what         String,
    what_sha256  String,
    row_count    UInt64,
    digest       String,
    outcome      LowCardinality(String),
    host         String,
    ingested_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (at, principal);

-- Every erasure of kept content, refusal under legal hold, hold set or lifted and retention expiry,
-- as the erasure chain holds it (contract/erasure.py). Erasing destroys keys, never records.
CREATE TABLE IF NOT EXISTS {db}.erasures
(
    erasure_id   String,
    at           DateTime64(3, 'UTC'),
    action       LowCardinality(String),
    subject      String,
    event_id     String,
    reason       String,
    key_ids      Array(String),
    by           String,
    via          String,
    ingested_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (at, erasure_id);

-- Content sealed under its subjects' keys and its record's (contract/sealed.py): the subjects, the
-- ids of the keys that sealed it, the sealed content. Rows kept before sealing keep key_b64/prompt/response.
ALTER TABLE {db}.content ADD COLUMN IF NOT EXISTS subjects Array(String);
ALTER TABLE {db}.content ADD COLUMN IF NOT EXISTS key_ids String DEFAULT '';
ALTER TABLE {db}.content ADD COLUMN IF NOT EXISTS sealed String DEFAULT '';

-- Each rule configuration a scoring worker scored with, as it first used it (store/rules_versions.py):
-- its version (rules-N+<file hash>), the effective thresholds and rules switched off, and when. One row
-- per worker that picked it up; queries take one per configuration.
CREATE TABLE IF NOT EXISTS {db}.rules_versions
(
    version          String,
    sha256           String,
    config_json      String,
    off              Array(String),
    first_scored_at  DateTime64(3, 'UTC'),
    scorer           String,
    ingested_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (first_scored_at, sha256);

-- Each emitter or analyst key set a chain worker checked with, as it first used it (store/key_sets.py):
-- whom the pipeline trusted from when. The set itself is kept (JCS), so each change can be shown.
CREATE TABLE IF NOT EXISTS {db}.key_sets
(
    key_set        LowCardinality(String),
    sha256         String,
    kids           Array(String),
    jwks_json      String,
    first_used_at  DateTime64(3, 'UTC'),
    worker         String,
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (key_set, first_used_at, sha256);
