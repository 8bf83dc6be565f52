"""Closed sets of names: environment prefix, default topics, consumer groups, headers."""

ENV_PREFIX = "AIAUDIT_"

REQUESTS_TOPIC = "ai.requests"
CHAIN_TOPIC = "ai.audit.chain"
DEAD_LETTER_TOPIC = "ai.requests.dlq"
ALERTS_TOPIC = "ai.audit.alerts"
INCIDENTS_TOPIC = "ai.audit.incidents"  # incident updates (OCSF Incident Findings), one partition per organisation
ALERT_STATUS_TOPIC = "ai.audit.alert-status"  # analysts' status changes, stored by the sink
SCORES_TOPIC = "ai.audit.scores"
POLICIES_TOPIC = "ai.policies"
CONTENT_TOPIC = "ai.content"
CHECKPOINTS_TOPIC = "ai.audit.checkpoints"
SCORE_STATE_TOPIC = "ai.audit.score-state"  # the scoring worker's identity states (compacted)
MODEL_PROMOTIONS_TOPIC = "ai.audit.model-promotions"  # each signed promotion, as the scorer first used it
DELIVERIES_TOPIC = "ai.audit.deliveries"  # every delivery attempt of a finding (delivered, failed, suppressed, ...)
DELIVERY_RETRIES_TOPIC = "ai.audit.delivery-retries"  # the delivery agent's scheduled retries (internal)
ERASURES_TOPIC = "ai.audit.erasures"  # erasures, legal holds, retention expiry (signed erasure records)
ACCESS_TOPIC = "ai.audit.access"  # every read of evidence through aiaudit (signed access records)
DELIVERY_DLQ_TOPIC = "ai.audit.delivery-dlq"  # deliveries that kept failing, the finding whole, for re-driving
RULES_TOPIC = "ai.audit.rules"  # each rule configuration in force, as a scorer first used it
KEY_SETS_TOPIC = "ai.audit.key-sets"  # each emitter or analyst key set in force, as a chain worker first used it

CHAIN_GROUP = "aiaudit-chain"  # requests; each other evidence kind's chain worker: aiaudit-chain-<kind>
SINK_GROUP = "aiaudit-sink"
SCORE_APP = "aiaudit-score"
DELIVER_APP = "aiaudit-deliver"  # the delivery agent's Faust app id (its group and table topics)

# Dead-letter headers: why, and where the message came from.
HDR_REASON = "aiaudit.reason"
HDR_DETAIL = "aiaudit.detail"
HDR_SRC = "aiaudit.src"

EVIDENCE_TABLE = "evidence"
DEAD_LETTER_TABLE = "dead_letters"
SCORES_TABLE = "scores"
ALERTS_TABLE = "alerts"
INCIDENTS_TABLE = "incidents"
ALERT_STATUS_TABLE = "alert_status"
POLICIES_TABLE = "policies"
CONTENT_TABLE = "content"
CHECKPOINTS_TABLE = "checkpoints"
MODEL_PROMOTIONS_TABLE = "model_promotions"
DELIVERIES_TABLE = "deliveries"
ERASURES_TABLE = "erasures"  # every erasure, refusal, legal hold and expiry, as its chain holds it
ACCESS_TABLE = "access_log"  # every read of evidence, as the access chain holds it
RULES_TABLE = "rules_versions"  # each rule configuration a scorer used, as the rules chain holds it
KEY_SETS_TABLE = "key_sets"  # each emitter or analyst key set a chain worker used, as its chain holds it
KIND_EVIDENCE_TABLE = "kind_evidence"  # chained records of every evidence kind but requests (format v2)


def evidence_chain_topic(input_topic: str) -> str:
    """The chain topic of an evidence kind read from `input_topic` (requests: CHAIN_TOPIC)."""
    return f"{input_topic}.chain"


def evidence_checkpoints_topic(input_topic: str) -> str:
    """The tree states and signed checkpoints of that kind's chains (requests: CHECKPOINTS_TOPIC)."""
    return f"{input_topic}.checkpoints"
