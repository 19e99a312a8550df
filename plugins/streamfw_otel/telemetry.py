"""Spans and counters for streamfw messages, through its message hooks (OpenTelemetry API).

Follows OpenTelemetry's semantic conventions for messaging
(https://opentelemetry.io/docs/specs/semconv/messaging/messaging-spans/):

* a ``send <stream>`` span (kind PRODUCER) per send, from the ``send`` call until the broker
  confirms (or refuses); its context goes into the message properties through the
  configured propagator (W3C ``traceparent``/``tracestate`` by default);
* a ``process <stream>`` span (kind CONSUMER) per message handed to the application, from
  ``receive`` until the message is acked or nacked, a child of the producer's context and
  linked to it;
* counters ``messaging.client.sent.messages``, ``messaging.client.consumed.messages``,
  ``streamfw.messages.acked``, ``streamfw.messages.nacked`` and
  ``streamfw.messages.redelivered`` (a message received with a redelivery count above 0).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import threading
from typing import TYPE_CHECKING

from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from streamfw.hookspecs import hookimpl
from streamfw.message import Message, MessageId, OutgoingMessage

if TYPE_CHECKING:
    from collections.abc import Generator

    from opentelemetry.util.types import AttributeValue

    from streamfw.consumer import Consumer
    from streamfw.producer import Producer

INSTRUMENTATION = "streamfw"
DEFAULT_MAX_OPEN_SPANS = 10_000


def messaging_system(transport: str) -> str:
    """``messaging.system`` for a transport's URL scheme: ``macrometa+https`` is ``macrometa``."""
    return transport.split("+", 1)[0] or "streamfw"


class Telemetry:
    """The OpenTelemetry plugin: register it (the ``otel`` entry point does) and it traces.

    Args:
        tracer_provider: where spans go; None: the global one (``trace.set_tracer_provider``).
        meter_provider: where counters go; None: the global one.
        max_open_spans: process spans kept open at once, waiting for an ack or nack
            (default 10,000). Past it, the oldest is ended without one, with
            ``streamfw.settled`` = ``"abandoned"``, so an application that never acks cannot
            grow this without bound.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        max_open_spans: int = DEFAULT_MAX_OPEN_SPANS,
    ) -> None:
        if not isinstance(max_open_spans, int) or max_open_spans < 1:
            raise ValueError(f"max_open_spans must be an int >= 1, got {max_open_spans!r}")
        self.max_open_spans = max_open_spans
        self._lock = threading.Lock()
        self._open: collections.OrderedDict[tuple[int, MessageId], trace.Span] = (
            collections.OrderedDict()
        )
        self.configure(tracer_provider, meter_provider)

    def configure(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        """Send spans and counters to these providers from now on (None: the global ones)."""
        self._own_providers = tracer_provider is not None or meter_provider is not None
        self._tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION, meter_provider=meter_provider)
        self._sent = meter.create_counter(
            "messaging.client.sent.messages", "{message}", "Messages a producer sent"
        )
        self._consumed = meter.create_counter(
            "messaging.client.consumed.messages", "{message}", "Messages handed to consumers"
        )
        self._acked = meter.create_counter(
            "streamfw.messages.acked", "{message}", "Messages consumers acknowledged"
        )
        self._nacked = meter.create_counter(
            "streamfw.messages.nacked", "{message}", "Messages consumers negatively acknowledged"
        )
        self._redelivered = meter.create_counter(
            "streamfw.messages.redelivered", "{message}", "Messages received more than once"
        )

    def recording(self) -> bool:
        """Whether spans or counters go anywhere: given providers, or global ones set.

        Until an SDK sets a global provider, OpenTelemetry's API hands out proxies that
        record nothing; the hooks then return at once instead of building spans, contexts
        and attributes for nothing (several times a message's own cost in streamfw).
        """
        if self._own_providers:
            return True
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return True
        meter_provider = metrics.get_meter_provider()
        # the API's default is a private proxy class; an SDK's provider is neither
        return not (
            isinstance(meter_provider, metrics.NoOpMeterProvider)
            or type(meter_provider).__name__ == "_ProxyMeterProvider"
        )

    def streamfw_hooks_idle(self) -> bool:
        """Left out of a producer's or consumer's hooks if nothing records when it opens."""
        return not self.recording()

    # ------------------------------------------------------------------------- producer

    @hookimpl(wrapper=True)
    def streamfw_send(
        self, producer: Producer, message: OutgoingMessage
    ) -> Generator[None, cf.Future[MessageId], cf.Future[MessageId]]:
        if not self.recording():
            return (yield)
        attributes: dict[str, AttributeValue] = {
            "messaging.system": messaging_system(producer.transport),
            "messaging.destination.name": message.stream,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.message.body.size": len(message.payload),
        }
        span = self._tracer.start_span(
            f"send {message.stream}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        propagate.inject(message.properties, context=trace.set_span_in_context(span))
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                future = yield
        except BaseException as exc:
            self._send_failed(span, attributes, exc)
            raise
        future.add_done_callback(lambda done: self._send_done(span, attributes, done))
        return future

    def _send_done(
        self,
        span: trace.Span,
        attributes: dict[str, AttributeValue],
        future: cf.Future[MessageId],
    ) -> None:
        error = None if future.cancelled() else future.exception()
        if future.cancelled() or error is not None:
            self._send_failed(span, attributes, error or cf.CancelledError())
            return
        span.set_attribute("messaging.message.id", str(future.result()))
        span.end()
        self._sent.add(1, attributes)

    def _send_failed(
        self, span: trace.Span, attributes: dict[str, AttributeValue], error: BaseException
    ) -> None:
        failed = {**attributes, "error.type": type(error).__name__}
        span.set_attributes({"error.type": type(error).__name__})
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()
        self._sent.add(1, failed)

    # ------------------------------------------------------------------------- consumer

    @hookimpl
    def streamfw_after_receive(self, consumer: Consumer, message: Message) -> None:
        if not self.recording():
            return
        attributes = _consumer_attributes(consumer, "process")
        self._consumed.add(1, attributes)
        if message.redelivery_count:
            self._redelivered.add(1, attributes)
        creation = propagate.extract(message.properties)
        created_by = trace.get_current_span(creation).get_span_context()
        span = self._tracer.start_span(
            f"process {message.stream}",
            context=creation,
            kind=SpanKind.CONSUMER,
            links=[Link(created_by)] if created_by.is_valid else None,
            attributes={
                **attributes,
                "messaging.message.id": str(message.id),
                "messaging.message.body.size": len(message.payload),
                "messaging.message.redelivery_count": message.redelivery_count,
            },
        )
        if consumer.subscription is None:  # a reader settles nothing: processing ends here
            span.set_attribute("streamfw.settled", "none")
            span.end()
            return
        key = (id(consumer), message.id)
        with self._lock:
            stale = self._open.pop(key, None)  # received again before it was settled
            self._open[key] = span
            dropped = (
                self._open.popitem(last=False)[1] if len(self._open) > self.max_open_spans else None
            )
        for old in (stale, dropped):
            if old is not None:
                old.set_attribute("streamfw.settled", "abandoned")
                old.end()

    @hookimpl
    def streamfw_on_ack(self, consumer: Consumer, message_id: MessageId) -> None:
        if not self.recording():
            return
        self._acked.add(1, _consumer_attributes(consumer, "ack"))
        self._settle(consumer, message_id, "ack")

    @hookimpl
    def streamfw_on_nack(self, consumer: Consumer, message_id: MessageId) -> None:
        if not self.recording():
            return
        self._nacked.add(1, _consumer_attributes(consumer, "nack"))
        self._settle(consumer, message_id, "nack")

    def _settle(self, consumer: Consumer, message_id: MessageId, how: str) -> None:
        with self._lock:
            span = self._open.pop((id(consumer), message_id), None)
        if span is not None:
            span.set_attribute("streamfw.settled", how)
            span.end()

    def open_spans(self) -> int:
        """Process spans waiting for an ack or nack."""
        with self._lock:
            return len(self._open)


def _consumer_attributes(consumer: Consumer, operation: str) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "messaging.system": messaging_system(consumer.transport),
        "messaging.destination.name": consumer.stream.name,
        "messaging.operation.type": "process" if operation == "process" else "settle",
        "messaging.operation.name": operation,
    }
    if consumer.subscription is not None:
        attributes["messaging.consumer.group.name"] = consumer.subscription
    return attributes
