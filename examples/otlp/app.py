"""An application calling an LLM with the OpenAI Python SDK, instrumented with OpenTelemetry's
official SDK and its OpenAI instrumentation, exporting over OTLP/HTTP to aiaudit's receiver
(docs/otlp.md). Nothing here is aiaudit's: any OpenTelemetry-instrumented application does the same.

Configured by OpenTelemetry's and OpenAI's standard environment variables:

    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
    OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20aiot_..."   (the sender's token)
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=EVENT_ONLY  (messages as log events; optional)
    OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental
    OPENAI_BASE_URL, OPENAI_API_KEY

    python app.py --user alice@example.com "What is our refund policy?"

Who asks is the application's to say: it puts `user.id` (and `user.roles`) on its spans, here from
OpenTelemetry baggage by a span processor, so the instrumentation's own spans carry them.
"""

from __future__ import annotations

import argparse

from opentelemetry import _logs, baggage, context, trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


class UserFromBaggage(SpanProcessor):
    """Copies the caller's identity from baggage onto every span started under it."""

    def on_start(self, span, parent_context=None):  # type: ignore[no-untyped-def]
        ctx = parent_context or context.get_current()
        for key in ("user.id", "gen_ai.agent.id"):
            value = baggage.get_baggage(key, ctx)
            if value:
                span.set_attribute(key, str(value))
        roles = baggage.get_baggage("user.roles", ctx)
        if roles:
            span.set_attribute("user.roles", str(roles).split(","))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("prompt", nargs="+")
    p.add_argument("--user", default=None)
    p.add_argument("--roles", default=None, help="comma-separated")
    p.add_argument("--agent", default=None, help="an agent acting for --user")
    p.add_argument("--model", default="gpt-4o")
    p.add_argument("--embed", action="store_true", help="also embed the prompt")
    p.add_argument("--service", default="checkout-assistant")
    args = p.parse_args()

    resource = Resource.create({"service.name": args.service})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(UserFromBaggage())
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    _logs.set_logger_provider(logger_provider)
    OpenAIInstrumentor().instrument()

    import openai

    ctx = context.get_current()
    for key, value in (("user.id", args.user), ("user.roles", args.roles), ("gen_ai.agent.id", args.agent)):
        if value:
            ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx)
    client = openai.OpenAI(max_retries=0)
    try:
        with trace.get_tracer("example-app").start_as_current_span("handle-question"):  # the app's own span
            for prompt in [" ".join(args.prompt)]:
                try:
                    answer = client.chat.completions.create(model=args.model,
                                                            messages=[{"role": "user", "content": prompt}])
                    print(answer.choices[0].message.content)
                except openai.APIStatusError as exc:
                    print(f"the vendor failed: {exc.status_code}")
                if args.embed:
                    client.embeddings.create(model="text-embedding-3-small", input=prompt)
    finally:
        context.detach(token)
        logger_provider.force_flush()  # content first, then the spans it belongs to
        tracer_provider.force_flush()
        logger_provider.shutdown()
        tracer_provider.shutdown()


if __name__ == "__main__":
    main()
