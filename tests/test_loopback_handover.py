"""Loopback hands queued deliveries over without the host lock, and sends without a Future.

Both are speed measures (``python -m benchmarks``); these tests pin down that they change
nothing a user can observe: a due ack timeout, an ack of a message queued again, and a
closed consumer are all seen before a delivery is handed out.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import uuid
from collections.abc import Iterator

import pytest
from streamfw_loopback.transport import LoopbackTransport

import streamfw
from streamfw.api import ProducerOptions, StreamRef
from streamfw.message import Envelope, Message, MessageId
from streamfw.plugins import installed
from streamfw.producer import Producer
from streamfw.testing.harness import ManualClock

WAIT = 5.0  # seconds a thread may take before the test calls it stuck


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(clock: ManualClock) -> Iterator[streamfw.Client]:
    with streamfw.connect(f"loopback://handover-{uuid.uuid4().hex}", clock=clock) as c:
        yield c


def _host_lock(client: streamfw.Client) -> threading.Lock:
    transport = client.transport
    assert isinstance(transport, LoopbackTransport)
    return transport._host.lock  # type: ignore[return-value]


def test_queued_deliveries_are_handed_out_while_another_thread_holds_the_lock(
    client: streamfw.Client,
) -> None:
    stream = client.stream("orders").create()
    with stream.consumer("billing") as consumer, stream.producer() as producer:
        for i in range(3):
            producer.send(i)
        first = consumer.receive(WAIT)  # a locked receive: the other two stay queued
        assert first is not None and first.value == 0
        got: list[Message | None] = []
        lock = _host_lock(client)
        with lock:  # e.g. a producer thread in the middle of a send
            worker = threading.Thread(
                target=lambda: got.extend(consumer.receive(WAIT) for _ in range(2))
            )
            worker.start()
            worker.join(WAIT)
            assert not worker.is_alive(), "receive waited for the host lock"
        assert [m.value for m in got if m is not None] == [1, 2]
        for message in [first, *got]:
            assert message is not None
            message.ack()
        assert stream.backlog() == 0


def test_a_due_ack_timeout_is_applied_before_a_queued_copy_is_handed_out(
    client: streamfw.Client, clock: ManualClock
) -> None:
    stream = client.stream("orders").create()
    with stream.consumer("billing", ack_timeout=5) as consumer, stream.producer() as producer:
        producer.send("a")
        producer.send("b")
        first = consumer.receive(WAIT)
        assert first is not None and first.value == "a"
        clock.advance(6)  # both time out, and go back to the subscription first in line
        again = [consumer.receive(WAIT), consumer.receive(WAIT)]
        assert [m.value for m in again if m is not None] == ["a", "b"]


def test_an_ack_of_a_message_queued_again_drops_the_queued_copy(
    client: streamfw.Client, clock: ManualClock
) -> None:
    stream = client.stream("orders").create()
    with (
        stream.consumer("billing", ack_timeout=5) as consumer,
        stream.consumer("audit") as other,
        stream.producer() as producer,
    ):
        producer.send("a")
        producer.send("b")
        first = consumer.receive(WAIT)
        assert first is not None and first.value == "a"
        clock.advance(6)
        assert other.receive(WAIT) is not None  # its receive runs the broker's timers
        first.ack()  # the copy of "a" queued again by the ack timeout is stale now
        rest = consumer.receive(WAIT)
        assert rest is not None and rest.value == "b"
        rest.ack()
        assert consumer.receive(0.05) is None


def test_a_closed_consumer_hands_out_nothing_it_had_queued(client: streamfw.Client) -> None:
    stream = client.stream("orders").create()
    consumer = stream.consumer("billing")
    with stream.producer() as producer:
        producer.send("a")
        producer.send("b")
    assert consumer.receive(WAIT) is not None
    consumer.close()
    with pytest.raises(streamfw.Closed):
        consumer.receive(WAIT)
    with stream.consumer("billing") as again:  # both go back to the subscription
        values = [again.receive(WAIT), again.receive(WAIT)]
        assert [m.value for m in values if m is not None] == ["a", "b"]


class _FutureOnlyLink:
    """A third-party producer link that knows nothing of ``send_confirmed``."""

    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    def send(self, envelope: Envelope) -> cf.Future[MessageId]:
        self.sent.append(envelope)
        future: cf.Future[MessageId] = cf.Future()
        future.set_result(MessageId("orders", 1, len(self.sent)))
        return future

    def flush(self, timeout: float | None) -> None:
        return None

    def close(self) -> None:
        return None


class _InlineLink(_FutureOnlyLink):
    def send(self, envelope: Envelope) -> cf.Future[MessageId]:
        raise AssertionError("send() called although send_confirmed() is offered")

    def send_confirmed(self, envelope: Envelope) -> MessageId:
        self.sent.append(envelope)
        return MessageId("orders", 2, len(self.sent))


def _producer(link: _FutureOnlyLink) -> Producer:
    pipeline = installed().codecs().pipeline()
    return Producer(link, StreamRef("orders"), pipeline, ProducerOptions())


def test_send_takes_the_id_directly_from_a_link_that_confirms_inline() -> None:
    link = _InlineLink()
    assert _producer(link).send({"n": 1}, properties={"k": "v"}) == MessageId("orders", 2, 1)
    assert link.sent[0].properties["k"] == "v"


def test_a_link_without_send_confirmed_still_works_through_its_futures() -> None:
    link = _FutureOnlyLink()
    producer = _producer(link)
    assert producer.send("x") == MessageId("orders", 1, 1)
    assert producer.send_async("y").result(WAIT) == MessageId("orders", 1, 2)
    producer.close()
    with pytest.raises(streamfw.Closed):
        producer.send("z")
