"""The OTLP/HTTP receiver: OpenTelemetry GenAI telemetry as signed contract events (docs/otlp.md)."""
