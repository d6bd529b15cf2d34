"""OpenTelemetry over a REAL tansu broker and HTTP: the trace context travels in Kafka headers and HTTP calls, a
letter's events share the trace whose id is their correlation id (also across outboxes), and the OTLP exporter
sends only when configured."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from smartpost_shared.contracts import make_envelope
from smartpost_shared.contracts.masterdata import PropertyUpserted
from smartpost_shared.messaging import EventConsumer, EventPublisher, make_broker
from smartpost_shared.settings import TracingSettings
from smartpost_shared.topics import MASTERDATA
from smartpost_shared.tracing import _inject_request, _parent_for, install_tracing, tracer

pytestmark = [pytest.mark.real]


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    assert isinstance(trace.get_tracer_provider(), TracerProvider)
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[attr-defined]
    return exporter


def finished(spans: InMemorySpanExporter, name: str, event_id: str):
    return [
        s for s in spans.get_finished_spans() if s.name == name and s.attributes.get("smartpost.event_id") == event_id
    ]


def envelope(account: str, correlation: uuid.UUID):
    return make_envelope(
        PropertyUpserted(property_id=f"P-{uuid.uuid4().hex[:6]}", reference="WEG-T", name="WEG Trace"),
        account_id=account,
        producer="test",
        correlation_id=correlation,
    )


async def test_trace_context_travels_through_kafka_and_outboxes_keep_the_letters_trace(spans, kafka_settings):
    account = f"acc-{uuid.uuid4().hex[:6]}"
    seen: dict[str, tuple[int, int]] = {}

    async def on_property(env) -> None:
        ctx = trace.get_current_span().get_span_context()
        seen[str(env.event_id)] = (ctx.trace_id, ctx.span_id)

    broker = make_broker(kafka_settings, service="trace-test")
    consumer = EventConsumer(broker, service="trace-test")
    consumer.subscribe(
        MASTERDATA, {"PropertyUpserted": on_property}, group_id=f"trace-{uuid.uuid4().hex[:8]}", session_timeout_ms=6000
    )
    producer_broker = make_broker(kafka_settings, service="trace-producer")
    publisher = EventPublisher(producer_broker)
    letter = uuid.uuid4()  # the letters service uses the letter id as correlation id
    in_trace, raw, from_http = envelope(account, letter), envelope(account, uuid.uuid4()), envelope(account, letter)
    await broker.start()
    await producer_broker.start()
    try:
        # (a) published while handling an event of the same letter: exact parent-child over the headers
        with tracer().start_as_current_span("handling", context=_parent_for({}, letter)):
            await publisher.publish(in_trace)
        # (b) published by an outbox relay (raw body, no headers): still the letter's trace
        await publisher.publish_raw(MASTERDATA.name, account, raw.to_bytes())
        # (c) published from an HTTP request's own trace: the letter's trace, linked to the request
        with tracer().start_as_current_span("POST /v1/letters") as http_span:
            await publisher.publish(from_http)
        deadline = time.monotonic() + 60
        ours = {str(e.event_id) for e in (in_trace, raw, from_http)}
        while not ours <= set(seen) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await producer_broker.stop()
        await broker.stop()

    [pub_a] = finished(spans, f"publish {MASTERDATA.name}", str(in_trace.event_id))
    [con_a] = finished(spans, f"consume {MASTERDATA.name}", str(in_trace.event_id))
    assert pub_a.context.trace_id == con_a.context.trace_id == letter.int
    assert con_a.parent is not None
    assert con_a.parent.span_id == pub_a.context.span_id  # propagated in the Kafka headers
    assert seen[str(in_trace.event_id)] == (letter.int, con_a.context.span_id)  # the handler runs inside it

    [con_b] = finished(spans, f"consume {MASTERDATA.name}", str(raw.event_id))
    assert con_b.context.trace_id == raw.correlation_id.int

    [pub_c] = finished(spans, f"publish {MASTERDATA.name}", str(from_http.event_id))
    [con_c] = finished(spans, f"consume {MASTERDATA.name}", str(from_http.event_id))
    assert pub_c.context.trace_id == con_c.context.trace_id == letter.int
    assert con_c.parent is not None
    assert con_c.parent.span_id == pub_c.context.span_id
    assert [link.context.span_id for link in pub_c.links] == [http_span.get_span_context().span_id]


async def test_http_server_spans_continue_the_callers_trace_and_clients_pass_it_on(spans):
    app = FastAPI()
    install_tracing(app, "trace-http", TracingSettings())

    @app.get("/letters/{letter_id}")
    async def one(letter_id: str) -> dict[str, str]:
        request = httpx.Request("GET", "http://downstream/x")
        await _inject_request(request)  # what the gateway's clients do (event hook)
        return {"traceparent": request.headers["traceparent"]}

    trace_id, span_id = uuid.uuid4().int, 0x1234567890ABCDEF
    incoming = f"00-{trace_id:032x}-{span_id:016x}-01"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        response = await client.get("/letters/abc", headers={"traceparent": incoming})
    in_trace = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    [server] = [s for s in in_trace if s.kind == SpanKind.SERVER]  # FastAPI's own server span
    assert server.parent is not None
    assert server.parent.span_id == span_id
    assert "/letters/{letter_id}" in server.name
    outgoing = response.json()["traceparent"]
    _version, out_trace, out_span, _flags = outgoing.split("-")
    assert int(out_trace, 16) == trace_id  # the downstream call continues the caller's trace
    assert int(out_span, 16) in {s.context.span_id for s in in_trace}


EXPORT_SCRIPT = """
import sys
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from smartpost_shared.settings import TracingSettings
from smartpost_shared.tracing import configure_tracing, shutdown_tracing, tracer
endpoint = sys.argv[1] or None
enabled = configure_tracing("probe", TracingSettings(otlp_endpoint=endpoint))
with tracer().start_as_current_span("probe-span"):
    pass
shutdown_tracing()
print("enabled" if enabled else "disabled", type(trace.get_tracer_provider()).__name__)
"""


def test_otlp_exporter_sends_only_when_configured(tmp_path):
    received: list[tuple[str, str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((self.path, self.headers.get("Content-Type", ""), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script = tmp_path / "probe.py"
    script.write_text(EXPORT_SCRIPT)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    try:
        off = subprocess.run([sys.executable, str(script), ""], capture_output=True, text=True, timeout=60, check=True)
        assert off.stdout.splitlines()[-1].split() == ["disabled", "ProxyTracerProvider"]
        assert received == []
        on = subprocess.run(
            [sys.executable, str(script), endpoint], capture_output=True, text=True, timeout=60, check=True
        )
        assert on.stdout.splitlines()[-1].split() == ["enabled", "TracerProvider"]
    finally:
        server.shutdown()
    assert len(received) == 1
    path, content_type, body = received[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    assert b"smartpost-probe" in body
    assert b"probe-span" in body
