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
    origin            LowCardinality(String),
    seq               UInt64,
    leaf_hash         String,
    prev              String,
    kid               LowCardinality(String),
    ts                DateTime64(6, 'UTC'),
    src_topic         LowCardinality(String),
    src_partition     UInt32,
    src_offset        UInt64,
    event_id          String,
    emitter_id        String,
    emitter_seq       UInt64,
    actor_type        LowCardinality(String),
    actor_id          String,
    on_behalf_of      Nullable(String),
    role              LowCardinality(String),
    route             LowCardinality(String),
    operation         LowCardinality(String),
    provider          LowCardinality(String),
    model             LowCardinality(String),
    prompt_level      LowCardinality(String),
    prompt_categories Array(String),
    response_level    Nullable(String),
    policy_id         LowCardinality(String),
    policy_version    LowCardinality(String),
    decision          LowCardinality(String),
    retention_scope   LowCardinality(String),
    input_tokens      UInt64,
    output_tokens     UInt64,
    latency_us        UInt64,
    payload           String,
    sig               String,
    ingested_at       DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_actor actor_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_behalf on_behalf_of TYPE bloom_filter GRANULARITY 4,
    INDEX idx_ts ts TYPE minmax GRANULARITY 4
)
ENGINE = MergeTree
ORDER BY (origin, seq);

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
