"""One error tree for aiaudit. Every error says what failed, where, and what to do.

    AiAuditError
     ├── ConfigError            settings or files that cannot be used as given
     │    └── PolicyError       a gateway policy file that cannot be used (the old bundle stays)
     ├── InfraError             the local broker or its tools (Java, Maven) are missing or down
     ├── DependencyUnavailable  a service we depend on (schema registry) is unreachable or failing:
     │                          the input is not at fault, so retry (backpressure), never dead-letter
     ├── EventRejected          bad input; kept whole in the dead-letter topic with `reason`
     │    ├── MalformedEvent    bytes that are not a framed Avro datum of a known schema
     │    ├── UnknownSchema     a schema fingerprint or registry id that does not exist
     │    ├── InvalidEvent      decodes, but breaks the contract (missing field, bad value)
     │    └── OversizedEvent    larger than the configured bound
     ├── NotCanonicalizable     a value RFC 8785 cannot render the same in every language (also a ValueError)
     ├── DeliveryFailed         the broker did not acknowledge an emitted event
     ├── SigningKeyError        a signing key is missing, unreadable or too open
     ├── StoreError             ClickHouse (server or embedded chDB) refused or failed
     ├── AuthError              a gateway caller's credentials do not authenticate (HTTP 401)
     ├── UpstreamError          an AI vendor failed or timed out (HTTP 502/504 to the caller)
     └── ChainBroken            verification found failures; `failures` lists each one

Outside the tree on purpose: aiaudit.detectors.model.ArtifactRefused (a model artifact whose hash or
features do not match), because detectors/ imports nothing of the pipeline; it becomes a
ConfigError where the pipeline loads models (pipeline/score/models.py).

Library errors (confluent-kafka, clickhouse-connect, fastavro, cryptography, urllib) are
translated into these once, where the library is called, with `raise ... from exc`.
The CLI turns these into one line and an exit code in one place (`aiaudit.pipeline.cli`).
"""

from __future__ import annotations

from dataclasses import dataclass


class AiAuditError(Exception):
    """Base of every error aiaudit raises on purpose."""

    exit_code = 2


class ConfigError(AiAuditError):
    pass


class PolicyError(ConfigError):
    """A policy file that cannot be used; the gateway keeps the bundle it had."""


class InfraError(AiAuditError):
    pass


class DependencyUnavailable(AiAuditError):
    """A dependency is down or failing, not the input: the caller retries, nothing is dead-lettered."""


class EventRejected(AiAuditError):
    """Bad input. `reason` is a short stable code stored with the dead letter."""

    reason = "rejected"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.detail = message


class MalformedEvent(EventRejected):
    reason = "malformed"


class UnknownSchema(EventRejected):
    reason = "unknown_schema"


class InvalidEvent(EventRejected):
    reason = "invalid"


class UnauthenticatedEmitter(EventRejected):
    """No registered emitter key signed the event (or the signature does not verify)."""

    reason = "unauthenticated_emitter"


class OversizedEvent(EventRejected):
    reason = "oversized"


class NotCanonicalizable(AiAuditError, ValueError):
    """The value holds something JCS cannot render the same in every language."""


class DeliveryFailed(AiAuditError):
    pass


class SigningKeyError(AiAuditError):
    pass


class StoreError(AiAuditError):
    pass


class AuthError(AiAuditError):
    """Authentication failed. `message` is safe to return to the caller (says what, not which secret);
    `status` is 401, or 503 when the identity provider could not be asked (the caller may retry)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UpstreamError(AiAuditError):
    """The vendor failed or timed out. `status` is what the caller gets (502 or 504)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Failure:
    """One verification failure, located: the chain, the seq, and what is wrong."""

    origin: str
    seq: int | None
    reason: str  # one of aiaudit.pipeline.verify.rules.REASONS
    detail: str
    where: str = ""  # instead of the seq: e.g. "line 12" of an export file

    def line(self, kind: str = "") -> str:
        """`FAIL <origin> [(<kind>)] <where>: <reason>: <detail>`; the kind is named unless it is
        an AI request (the lines of a request chain read as they always have)."""
        where = self.where or (f"seq {self.seq}" if self.seq is not None else "chain")
        named = f" ({kind})" if kind and kind != "request" else ""
        return f"FAIL {self.origin}{named} {where}: {self.reason}: {self.detail}"


class ChainBroken(AiAuditError):
    """Verification failed. `failures` holds every failure found, in chain order."""

    exit_code = 1

    def __init__(self, failures: list[Failure]) -> None:
        self.failures = failures
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(first.line() + more)
