"""Benchmark 2: publish -> receive -> ack throughput with 1 KiB JSON messages.

* streamfw: ``loopback://``, one producer thread calling ``producer.send(value)`` and one
  consumer thread calling ``consumer.receive()`` then ``msg.ack()``; the clock runs from
  starting both threads until the last ack. The plugins are exactly the loopback transport:
  no plugin implements a message hook, whatever else is installed.
* hooked (no target): the same with a no-op tracing plugin as well, implementing every
  message hook (``streamfw_send`` as a wrapper): what the hooks cost once a plugin uses them;
  ``streamfw`` beside it shows that they cost nothing when none does.
* floor: the same codec work (``Pipeline.encode`` then ``Pipeline.decode``) inline in one
  thread, with no transport at all: the rate no transport can beat.
* one_thread (no target): streamfw's send, receive and ack in turn in one thread: the
  transport's own cost, without the price of two threads handing a lock back and forth.
* kombu: ``memory://``, the same job (publish with the json serializer, ``get``, decode the
  payload, ``ack``) with one producer and one consumer thread, each on its own connection.

All are wall-clock rates (messages per second), interleaved round by round.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator
from typing import Any

from benchmarks.payload import make_value
from benchmarks.timing import interleave, run_threads
from streamfw.hookspecs import hookimpl  # imports no JSON backend: the worker may block one

RECEIVE_TIMEOUT = 10.0  # a lost message fails the run instead of hanging it
KOMBU_POLLING_INTERVAL = 0.001  # kombu's default (1 s) would stall whenever the queue runs dry


class NoOpTracing:
    """A tracing plugin that does nothing: implements every message hook, changes nothing."""

    @hookimpl(wrapper=True)
    def streamfw_send(self, producer: Any, message: Any) -> Generator[None, Any, Any]:
        return (yield)

    @hookimpl
    def streamfw_after_receive(self, consumer: Any, message: Any) -> None:
        return None

    @hookimpl
    def streamfw_on_ack(self, consumer: Any, message_id: Any) -> None:
        return None

    @hookimpl
    def streamfw_on_nack(self, consumer: Any, message_id: Any) -> None:
        return None


def plugin_set(*, tracing: bool) -> Any:
    """Only the loopback transport (plus the no-op tracing plugin if asked)."""
    import streamfw_loopback

    import streamfw

    extra: dict[str, object] = {"loopback": streamfw_loopback}
    if tracing:
        extra["noop-tracing"] = NoOpTracing()
    return streamfw.discover(entry_points=False, extra=extra)


def streamfw_rate(value: Any, messages: int, *, tracing: bool = False) -> float:
    import streamfw

    url = f"loopback://bench-{uuid.uuid4().hex}"
    with streamfw.connect(url, plugins=plugin_set(tracing=tracing)) as client:
        stream = client.stream("bench").create()
        with stream.consumer("bench") as consumer, stream.producer() as producer:

            def produce() -> None:
                for _ in range(messages):
                    producer.send(value)

            def consume() -> None:
                last = None
                for _ in range(messages):
                    msg = consumer.receive(RECEIVE_TIMEOUT)
                    if msg is None:
                        raise TimeoutError("streamfw: a message did not arrive")
                    msg.ack()
                    last = msg
                if last is None or last.value != value:
                    raise AssertionError("streamfw: the last message was not decoded intact")

            return messages / run_threads(consume, produce)[0]


def streamfw_one_thread_rate(value: Any, messages: int) -> float:
    """Not a target: send, receive and ack in turn in one thread.

    What the transport costs in CPU alone, without two threads handing a lock (and the GIL)
    back and forth; the gap to ``streamfw_rate`` is the price of the threads.
    """
    import streamfw

    url = f"loopback://bench-{uuid.uuid4().hex}"
    with streamfw.connect(url, plugins=plugin_set(tracing=False)) as client:
        stream = client.stream("bench").create()
        with stream.consumer("bench") as consumer, stream.producer() as producer:
            last = None
            start = time.perf_counter()
            for _ in range(messages):
                producer.send(value)
                msg = consumer.receive(RECEIVE_TIMEOUT)
                if msg is None:
                    raise TimeoutError("streamfw: a message did not arrive")
                msg.ack()
                last = msg
            elapsed = time.perf_counter() - start
            if last is None or last.value != value:
                raise AssertionError("streamfw: the last message was not decoded intact")
            return messages / elapsed


def floor_rate(value: Any, messages: int) -> float:
    from streamfw.codec import CODEC_PROPERTY
    from streamfw.plugins import discover

    pipeline = discover().codecs().pipeline()
    start = time.perf_counter()
    for _ in range(messages):
        payload, tag = pipeline.encode(value)
        out = pipeline.decode(payload, {CODEC_PROPERTY: tag})
    elapsed = time.perf_counter() - start
    if out != value:
        raise AssertionError("floor: the value did not come back intact")
    return messages / elapsed


def kombu_rate(value: Any, messages: int) -> float:
    from kombu.connection import Connection

    name = f"bench-{uuid.uuid4().hex}"
    options = {"polling_interval": KOMBU_POLLING_INTERVAL}
    with (
        Connection("memory://", transport_options=options) as conn_p,  # type: ignore[no-untyped-call]
        Connection("memory://", transport_options=options) as conn_c,  # type: ignore[no-untyped-call]
        conn_p.SimpleQueue(name) as queue_p,
        conn_c.SimpleQueue(name) as queue_c,
    ):

        def produce() -> None:
            for _ in range(messages):
                queue_p.put(value, serializer="json")

        def consume() -> None:
            last = None
            for _ in range(messages):
                msg = queue_c.get(timeout=RECEIVE_TIMEOUT)
                last = msg.payload  # decodes the body
                msg.ack()
            if last != value:
                raise AssertionError("kombu: the last message was not decoded intact")

        return messages / run_threads(consume, produce)[0]


def kombu_available() -> bool:
    try:
        import kombu  # noqa: F401
    except ImportError:
        return False
    return True


def run(rounds: int, messages: int) -> dict[str, Any]:
    """Interleave them all; messages per second, per round."""
    value = make_value()
    runs: dict[str, Callable[[], float]] = {
        "streamfw": lambda: streamfw_rate(value, messages),
        "hooked": lambda: streamfw_rate(value, messages, tracing=True),
        "floor": lambda: floor_rate(value, messages),
        "one_thread": lambda: streamfw_one_thread_rate(value, messages),
    }
    if kombu_available():
        runs["kombu"] = lambda: kombu_rate(value, messages)
    return dict(interleave(runs, rounds))
