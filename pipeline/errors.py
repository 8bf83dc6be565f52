"""One error tree for aiaudit. Every error says what failed, where, and what to do.

    AiAuditError
     ├── ConfigError            settings or files that cannot be used as given
     ├── InfraError             the local broker or its tools (Java, Maven) are missing or down
     ├── EventRejected          bad input; kept whole in the dead-letter topic with `reason`
     │    ├── MalformedEvent    bytes that are not a framed Avro datum of a known schema
     │    ├── UnknownSchema     a schema fingerprint or registry id we do not know
     │    ├── InvalidEvent      decodes, but breaks the contract (missing field, bad value)
     │    └── OversizedEvent    larger than the configured bound
     ├── DeliveryFailed         the broker did not acknowledge an emitted event
     ├── SigningKeyError        a signing key is missing, unreadable or too open
     ├── StoreError             ClickHouse (server or embedded chDB) refused or failed
     └── ChainBroken            verification found failures; `failures` lists each one

The CLI turns these into one line and an exit code in one place (`pipeline.cli`).
"""

from __future__ import annotations

from dataclasses import dataclass


class AiAuditError(Exception):
    """Base of every error aiaudit raises on purpose."""

    exit_code = 2


class ConfigError(AiAuditError):
    pass


class InfraError(AiAuditError):
    pass


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


class OversizedEvent(EventRejected):
    reason = "oversized"


class DeliveryFailed(AiAuditError):
    pass


class SigningKeyError(AiAuditError):
    pass


class StoreError(AiAuditError):
    pass


@dataclass(frozen=True)
class Failure:
    """One verification failure, located: the chain, the seq, and what is wrong."""

    origin: str
    seq: int | None
    reason: str  # one of pipeline.verify.rules.REASONS
    detail: str

    def line(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "chain"
        return f"FAIL {self.origin} {where}: {self.reason}: {self.detail}"


class ChainBroken(AiAuditError):
    """Verification failed. `failures` holds every failure found, in chain order."""

    exit_code = 1

    def __init__(self, failures: list[Failure]) -> None:
        self.failures = failures
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(first.line() + more)
