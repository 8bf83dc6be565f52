"""aiaudit for application code: emit one event per AI request to the audit pipeline.

    from aiaudit import Emitter, Settings
    emitter = Emitter(Settings(), emitter_id="billing-service-7f3a")
    emitter.emit({...})            # the event contract: docs/event-contract.md
    emitter.flush()

This is the light install (`pip install aiaudit`): the Kafka client, fastavro and what the
contract needs. The workers, the gateway, the verifier and the store are `aiaudit[server]`.
Everything lives under this one import root: aiaudit.pipeline (the data flow, one sub-package
a step), aiaudit.schemas (the Avro contract), aiaudit.detectors (scoring features and models),
aiaudit.infra (the local broker, topics, the store's tables).

The names below are loaded when first used, so `import aiaudit.detectors` (say) does not load
the Kafka client.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiaudit.pipeline.contract import from_json_event, to_json_event, validate_event
    from aiaudit.pipeline.emit.producer import Delivery, Emitter
    from aiaudit.pipeline.errors import AiAuditError, DeliveryFailed, InfraError, InvalidEvent, OversizedEvent
    from aiaudit.pipeline.settings import Settings

try:
    __version__ = version("aiaudit")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_HOME = {
    "from_json_event": "aiaudit.pipeline.contract", "to_json_event": "aiaudit.pipeline.contract",
    "validate_event": "aiaudit.pipeline.contract",
    "Delivery": "aiaudit.pipeline.emit.producer", "Emitter": "aiaudit.pipeline.emit.producer",
    "AiAuditError": "aiaudit.pipeline.errors", "DeliveryFailed": "aiaudit.pipeline.errors",
    "InfraError": "aiaudit.pipeline.errors", "InvalidEvent": "aiaudit.pipeline.errors",
    "OversizedEvent": "aiaudit.pipeline.errors",
    "Settings": "aiaudit.pipeline.settings",
}

__all__ = ["AiAuditError", "Delivery", "DeliveryFailed", "Emitter", "InfraError", "InvalidEvent", "OversizedEvent",
           "Settings", "__version__", "from_json_event", "to_json_event", "validate_event"]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'aiaudit' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
