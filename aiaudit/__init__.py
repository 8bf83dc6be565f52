"""aiaudit for application code: emit one event per AI request to the audit pipeline.

    from aiaudit import Emitter, Settings
    emitter = Emitter(Settings(), emitter_id="billing-service-7f3a")
    emitter.emit({...})            # the event contract: docs/event-contract.md
    emitter.flush()

This is the light install (`pip install aiaudit`): the Kafka client, fastavro and what the
contract needs. The workers, the gateway, the verifier and the store are `aiaudit[server]`;
their code lives in the `pipeline` package.
"""

from pipeline.contract import from_json_event, to_json_event, validate_event
from pipeline.emit.producer import Delivery, Emitter
from pipeline.errors import AiAuditError, DeliveryFailed, InfraError, InvalidEvent, OversizedEvent
from pipeline.settings import Settings

__all__ = ["AiAuditError", "Delivery", "DeliveryFailed", "Emitter", "InfraError", "InvalidEvent", "OversizedEvent",
           "Settings", "from_json_event", "to_json_event", "validate_event"]
