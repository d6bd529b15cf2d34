"""OpenTelemetry traces: one trace per serial letter across every service, exported only when configured.

- **Kafka**: :class:`~smartpost_shared.messaging.EventPublisher` writes the W3C ``traceparent`` into the message
  headers; :class:`~smartpost_shared.messaging.EventConsumer` continues it in a ``consume <topic>`` span.
- **Outboxes break header propagation** (an event is published later, from another task). Every envelope carries
  ``correlation_id``, and the letters service sets it to the letter id for everything a serial letter causes; so a
  span whose incoming context is missing or belongs to another trace gets a remote parent *in the trace whose id is
  the correlation id*. The upload, split, assignment, release, publication, mail and print of one letter thus land
  in one trace (trace id = letter id, easy to look up), parented exactly wherever headers carried the context.
- **HTTP**: FastAPI's built-in OpenTelemetry support makes a server span per request (W3C ``traceparent``
  extracted); :func:`httpx_event_hooks` inject the context into outgoing calls (gateway -> services).
- **Export**: off unless ``SMARTPOST_TRACING_OTLP_ENDPOINT`` is set (OTLP over HTTP, e.g.
  ``http://otel-collector:4318/v1/traces``). Without it the OpenTelemetry API stays a no-op that still passes an
  incoming context on, so an unconfigured service does not cut the trace.
"""

from __future__ import annotations

import contextlib
import random
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterator, Mapping, MutableMapping

    import httpx
    from fastapi import FastAPI

    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_shared.settings import TracingSettings

log = get_logger(__name__)

TRACER_NAME = "smartpost"


def configure_tracing(service: str, settings: TracingSettings) -> bool:
    """Install an exporting tracer provider when an OTLP endpoint is configured; returns whether it did."""
    if not settings.otlp_endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased  # noqa: PLC0415

    provider = TracerProvider(
        resource=Resource.create({"service.name": f"smartpost-{service}", "service.namespace": "smartpost"}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint, timeout=settings.export_timeout_seconds))
    )
    trace.set_tracer_provider(provider)
    log.info("tracing.enabled", endpoint=settings.otlp_endpoint, sample_ratio=settings.sample_ratio)
    return True


def shutdown_tracing() -> None:
    """Flush and stop the exporter (called when the service stops)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def trace_id_of(correlation_id: uuid.UUID) -> int:
    return correlation_id.int


def _parent_for(headers: Mapping[str, str], correlation_id: uuid.UUID | None) -> otel_context.Context:
    """The headers' context if it is in the correlation's trace; else a remote parent in that trace."""
    extracted = propagate.extract(dict(headers))
    span_context = trace.get_current_span(extracted).get_span_context()
    if correlation_id is None or (span_context.is_valid and span_context.trace_id == trace_id_of(correlation_id)):
        return extracted
    remote = SpanContext(
        trace_id=trace_id_of(correlation_id),
        span_id=random.getrandbits(64) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(remote))


def _envelope_attributes(envelope: Envelope, topic: str) -> dict[str, str]:
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "smartpost.event_type": envelope.event_type,
        "smartpost.event_id": str(envelope.event_id),
        "smartpost.correlation_id": str(envelope.correlation_id),
        "smartpost.account_id": envelope.account_id,
    }


@contextlib.contextmanager
def publish_span(envelope: Envelope, topic: str, headers: MutableMapping[str, str]) -> Iterator[None]:
    """A producer span in the envelope's trace; writes its ``traceparent`` into ``headers``."""
    current = trace.get_current_span().get_span_context()
    in_trace = current.is_valid and current.trace_id == trace_id_of(envelope.correlation_id)
    # Outside the letter's trace (e.g. an HTTP request's own trace): start in the letter's trace, linked to it.
    parent = None if in_trace else _parent_for({}, envelope.correlation_id)
    links = [Link(current)] if current.is_valid and not in_trace else None
    with tracer().start_as_current_span(
        f"publish {topic}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes=_envelope_attributes(envelope, topic),
        links=links,
    ):
        propagate.inject(headers)
        yield


@contextlib.contextmanager
def consume_span(envelope: Envelope, topic: str, headers: Mapping[str, str]) -> Iterator[None]:
    """A consumer span continuing the producer's context (or the correlation's trace) around the handler."""
    parent = _parent_for(headers, envelope.correlation_id)
    with tracer().start_as_current_span(
        f"consume {topic}", context=parent, kind=SpanKind.CONSUMER, attributes=_envelope_attributes(envelope, topic)
    ):
        yield


def kafka_headers(raw: Any) -> dict[str, str]:
    """Headers of an aiokafka record as text (FastStream hands the raw record through ``msg.raw_message``)."""
    out: dict[str, str] = {}
    for key, value in getattr(raw, "headers", None) or ():
        if isinstance(value, bytes):
            out[key] = value.decode("latin-1")
        elif value is not None:
            out[key] = str(value)
    return out


def install_tracing(app: FastAPI, service: str, settings: TracingSettings) -> bool:
    """Configure the exporter for this service if an endpoint is set (returns whether it is).

    HTTP server spans come from FastAPI itself (its built-in OpenTelemetry support extracts ``traceparent`` and
    uses the global tracer provider), so this adds no middleware of its own.
    """
    enabled = configure_tracing(service, settings)
    app.state.tracing_enabled = enabled
    return enabled


async def _inject_request(request: httpx.Request) -> None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    for key, value in carrier.items():
        request.headers[key] = value


def httpx_event_hooks() -> dict[str, list[Any]]:
    """``event_hooks`` for an ``httpx.AsyncClient`` that pass the current trace context to the called service."""
    return {"request": [_inject_request]}
