"""The kinds of evidence that are chained (pure): each kind's input topic and what it holds.

AI requests are kind `request` (record format v1, chain/record.py), chained from the requests
topic into the chain topic. Every other kind is chained by its own chain worker (format v2,
chain/record_v2.py) from its input topic into `<input topic>.chain`, with tree states and signed
checkpoints in `<input topic>.checkpoints`; each partition of the input topic is one chain, its
origin `<org>/<env>/<input topic>/p<partition>/g<generation>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiaudit.pipeline import names
from aiaudit.pipeline.settings import KafkaSettings

REQUEST = "request"
STATUS_CHANGE = "status_change"  # its chain worker admits only changes an analyst's key signed
ACCESS = "access"  # its chain worker admits only access records a reader's key signed
ERASURE = "erasure"  # its chain worker admits only erasure records the eraser's key signed
# Largest record of an evidence kind: its input message whole in base64 (the policies topic takes 4 MiB).
KIND_RECORD_MAX_BYTES = 8 * 1_048_576


@dataclass(frozen=True)
class EvidenceKind:
    name: str
    topic_setting: str  # the KafkaSettings field naming its input topic
    holds: str  # what one record of the kind is evidence of, for people

    def input_topic(self, k: KafkaSettings) -> str:
        topic = getattr(k, self.topic_setting)
        assert isinstance(topic, str)
        return topic

    def chain_topic(self, k: KafkaSettings) -> str:
        return names.evidence_chain_topic(self.input_topic(k))

    def checkpoints_topic(self, k: KafkaSettings) -> str:
        return names.evidence_checkpoints_topic(self.input_topic(k))

    def group(self, k: KafkaSettings) -> str:
        """The consumer group of its chain worker (its committed offsets say how far it has chained)."""
        return f"{k.chain_group}-{self.name}"


KINDS = (
    EvidenceKind("finding", "alerts_topic", "an OCSF Detection Finding the scoring worker raised (signed by it)"),
    EvidenceKind("incident", "incidents_topic", "an incident update: findings grouped, paged or held"),
    EvidenceKind(STATUS_CHANGE, "alert_status_topic", "an analyst's status change of a finding or incident"),
    EvidenceKind("dead_letter", "dead_letter_topic", "a request message the chain worker refused, with the reason"),
    EvidenceKind("delivery", "deliveries_topic", "a delivery attempt of a finding and its outcome"),
    EvidenceKind("delivery_dead_letter", "delivery_dlq_topic", "a delivery that kept failing, the finding whole"),
    EvidenceKind("model_promotion", "model_promotions_topic", "a signed model promotion, as a scorer first used it"),
    EvidenceKind("policy", "policies_topic", "a policy bundle a gateway loaded"),
    EvidenceKind(ERASURE, "erasures_topic", "an erasure of kept content, a refusal under legal hold, a hold, an expiry"),
    EvidenceKind("rules", "rules_topic", "a rule configuration (thresholds, rules switched off), as a scorer first used it"),
    EvidenceKind("key_set", "key_sets_topic", "an emitter or analyst key set (whom the chain workers trust), as one first used it"),
    EvidenceKind(ACCESS, "access_topic", "a read of evidence through aiaudit: who, what, how many rows, their digest"),
)
BY_NAME = {k.name: k for k in KINDS}


def kind_named(name: str) -> EvidenceKind:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"no evidence kind {name!r}: one of {', '.join(BY_NAME)}") from None


def kind_of_topic(k: KafkaSettings, input_topic: str) -> str | None:
    """The kind chained from `input_topic` (REQUEST for the requests topic), None for no kind."""
    if input_topic == k.requests_topic:
        return REQUEST
    return next((kind.name for kind in KINDS if kind.input_topic(k) == input_topic), None)


def kind_of_origin(k: KafkaSettings, origin: str) -> str | None:
    """The kind a chain holds, from its origin `<org>/<env>/<input topic>/p<n>/g<n>`; None when its
    topic is no kind's (another deployment's settings, or not an origin)."""
    parts = origin.split("/")
    return kind_of_topic(k, parts[2]) if len(parts) == 5 else None


def is_kind_chain(k: KafkaSettings, origin: str) -> bool:
    """True when `origin` is a chain of an evidence kind other than requests (stored in kind_evidence)."""
    return kind_of_origin(k, origin) not in (None, REQUEST)
