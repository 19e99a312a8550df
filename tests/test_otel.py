"""The OpenTelemetry plugin (streamfw_otel), through the ``otel`` entry point, on every
transport: W3C trace context from producer to consumer, spans and counters, read back with
the OpenTelemetry SDK's in-memory exporters."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
)
from streamfw_otel import plugin
from streamfw_otel.telemetry import Telemetry

import streamfw
from streamfw.testing import Harness
from tests import test_message_hooks

harness = test_message_hooks.harness  # the same fixture: each transport, the sync API

WAIT = 5.0


class Recorded:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def finished(self, kind: SpanKind) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.kind == kind]

    def counts(self) -> dict[str, int]:
        data = self.metrics.get_metrics_data()
        out: dict[str, int] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", 0)  # a counter's NumberDataPoint
                        out[metric.name] = out.get(metric.name, 0) + int(value)
        return out


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    """The installed plugin (the ``otel`` entry point), sending to in-memory exporters."""
    assert isinstance(plugin, Telemetry), plugin
    rec = Recorded()
    plugin.configure(rec.tracer_provider, rec.meter_provider)
    try:
        yield rec
    finally:
        plugin.configure()  # back to the global providers (no-op in this suite)
        rec.tracer_provider.shutdown()
        rec.meter_provider.shutdown()


@pytest.fixture
def name() -> str:
    return f"otel-{uuid.uuid4().hex[:8]}"


def test_trace_context_goes_from_the_send_span_to_the_process_span(
    harness: Harness, recorded: Recorded, name: str
) -> None:
    with harness.client() as client:
        stream = client.stream(name).create()
        with stream.consumer("billing", initial_position="earliest") as consumer:
            with stream.producer() as producer:
                mid = producer.send({"order": 1})
            message = consumer.receive(WAIT)
            assert message is not None and message.id == mid
            message.ack()
    (send,) = recorded.finished(SpanKind.PRODUCER)
    (process,) = recorded.finished(SpanKind.CONSUMER)
    sent = send.get_span_context()
    assert sent is not None
    assert message.properties["traceparent"] == (
        f"00-{sent.trace_id:032x}-{sent.span_id:016x}-{sent.trace_flags:02x}"
    )
    assert process.parent is not None and process.parent.span_id == sent.span_id
    assert process.context is not None and process.context.trace_id == sent.trace_id
    assert [link.context.span_id for link in process.links] == [sent.span_id]
    system = harness.name  # the URL scheme, less its "+http": loopback, macrometa
    assert send.name == f"send {name}" and process.name == f"process {name}"
    assert dict(send.attributes or {}) == {
        "messaging.system": system,
        "messaging.destination.name": name,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.message.body.size": len(message.payload),
        "messaging.message.id": str(mid),
    }
    attributes = dict(process.attributes or {})
    assert attributes["messaging.system"] == system
    assert attributes["messaging.consumer.group.name"] == "billing"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.message.id"] == str(mid)
    assert attributes["streamfw.settled"] == "ack"
    assert recorded.counts() == {
        "messaging.client.sent.messages": 1,
        "messaging.client.consumed.messages": 1,
        "streamfw.messages.acked": 1,
    }


def test_a_nacked_message_is_counted_nacked_and_redelivered(
    harness: Harness, recorded: Recorded, name: str
) -> None:
    with harness.client() as client:
        stream = client.stream(name).create()
        with (
            stream.consumer(
                "billing", type="shared", initial_position="earliest", nack_delay=1
            ) as consumer,
            stream.producer() as producer,
        ):
            producer.send("retry me")
            first = consumer.receive(WAIT)
            assert first is not None
            first.nack()
            harness.advance(2)
            again = consumer.receive(WAIT)
            assert again is not None and again.redelivery_count == 1
            again.ack()
    processes = recorded.finished(SpanKind.CONSUMER)
    assert [dict(s.attributes or {})["streamfw.settled"] for s in processes] == ["nack", "ack"]
    (send,) = recorded.finished(SpanKind.PRODUCER)
    sent = send.get_span_context()
    assert sent is not None
    assert {p.parent.span_id for p in processes if p.parent} == {sent.span_id}
    assert recorded.counts() == {
        "messaging.client.sent.messages": 1,
        "messaging.client.consumed.messages": 2,
        "streamfw.messages.nacked": 1,
        "streamfw.messages.redelivered": 1,
        "streamfw.messages.acked": 1,
    }


def test_a_failed_send_ends_its_span_with_the_error(recorded: Recorded) -> None:
    with streamfw.connect(f"loopback://otel-{uuid.uuid4().hex}") as client:
        stream = client.stream("doomed").create()
        with stream.producer() as producer:
            stream.delete(force=True)
            with pytest.raises(streamfw.StreamDeleted):
                producer.send("lost")
    (send,) = recorded.finished(SpanKind.PRODUCER)
    assert send.status.status_code is StatusCode.ERROR
    assert dict(send.attributes or {})["error.type"] == "StreamDeleted"
    assert recorded.counts() == {"messaging.client.sent.messages": 1}


def test_process_spans_waiting_for_an_ack_are_bounded() -> None:
    rec = Recorded()
    telemetry = Telemetry(rec.tracer_provider, rec.meter_provider, max_open_spans=2)
    import streamfw_loopback

    plugins = streamfw.discover(
        entry_points=False, extra={"loopback": streamfw_loopback, "otel": telemetry}
    )
    with streamfw.connect(f"loopback://otel-{uuid.uuid4().hex}", plugins=plugins) as client:
        stream = client.stream("s").create()
        with stream.consumer("c") as consumer, stream.producer() as producer:
            for i in range(3):
                producer.send(i)
            for _ in range(3):
                assert consumer.receive(WAIT) is not None  # never acked
            assert telemetry.open_spans() == 2
    (abandoned,) = rec.finished(SpanKind.CONSUMER)
    assert dict(abandoned.attributes or {})["streamfw.settled"] == "abandoned"
    with pytest.raises(ValueError, match="max_open_spans"):
        Telemetry(max_open_spans=0)


PROBE = """
import sys
{block}
import streamfw
hooks = streamfw.discover().message_hooks("loopback")
import streamfw_otel
print(type(streamfw_otel.plugin).__name__, hooks.send is None and not hooks.consuming)
"""


@pytest.mark.parametrize(
    ("block", "env"),
    [
        ("sys.modules['opentelemetry'] = None", {}),  # opentelemetry-api not installed
        ("", {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "flask, streamfw"}),
    ],
    ids=["without-opentelemetry", "disabled"],
)
def test_the_plugin_implements_no_hook_without_opentelemetry_or_when_disabled(
    block: str, env: dict[str, str]
) -> None:
    code = PROBE.format(block=block)
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.split() == ["Inactive", "True"]


def test_the_plugin_is_left_out_while_nothing_records() -> None:
    """opentelemetry-api installed but no SDK provider: the proxies record nothing, so a
    producer or consumer opened then calls no hook at all (as with no plugin)."""
    assert isinstance(plugin, Telemetry) and not plugin.recording()
    with streamfw.connect(f"loopback://otel-{uuid.uuid4().hex}") as client:
        stream = client.stream("s").create()
        with stream.consumer("c") as quiet_consumer, stream.producer() as quiet:
            assert quiet._send_hook is None and quiet_consumer._after_receive is None
        rec = Recorded()
        plugin.configure(rec.tracer_provider, rec.meter_provider)
        try:
            with stream.producer() as traced:
                assert traced._send_hook is not None
                traced.send("x")
        finally:
            plugin.configure()
    assert len(rec.finished(SpanKind.PRODUCER)) == 1


def test_a_readers_process_span_ends_when_it_receives(recorded: Recorded) -> None:
    with streamfw.connect(f"loopback://otel-{uuid.uuid4().hex}") as client:
        stream = client.stream("s").create()
        with stream.producer() as producer:
            producer.send("a")
        with stream.reader("earliest") as reader:
            message = reader.receive(WAIT)
            assert message is not None
            message.ack()  # a no-op for a reader: no hook, no count
    (process,) = recorded.finished(SpanKind.CONSUMER)
    assert dict(process.attributes or {})["streamfw.settled"] == "none"
    assert isinstance(plugin, Telemetry) and plugin.open_spans() == 0
    assert "streamfw.messages.acked" not in recorded.counts()


def test_tracestate_travels_with_the_trace(harness: Harness, recorded: Recorded, name: str) -> None:
    """A trace started elsewhere (with a vendor's ``tracestate``) goes on through streamfw."""
    caller = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1")]),
    )
    with harness.client() as client:
        stream = client.stream(name).create()
        with stream.consumer("billing", initial_position="earliest") as consumer:
            with stream.producer() as producer, trace.use_span(NonRecordingSpan(caller)):
                producer.send("traced")
            message = consumer.receive(WAIT)
            assert message is not None
            message.ack()
    assert message.properties["tracestate"] == "vendor=v1"
    assert message.properties["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    (send,) = recorded.finished(SpanKind.PRODUCER)
    (process,) = recorded.finished(SpanKind.CONSUMER)
    assert send.parent is not None and send.parent.span_id == caller.span_id
    assert process.context is not None and process.context.trace_id == caller.trace_id
    assert process.context.trace_state == caller.trace_state
