"""What the loopback hot path (issue 10) must keep: permits given back in batches of half the
receiver queue (docs/protocol.md §10), publish times to the millisecond, ``publish_from``,
acks by the handed-out id, the broker's ``schedule`` of timers, and ``Deliver`` as a value.

Each is a speed measure; these tests pin down what a user (or a front end of the broker core)
can observe of it. Time comes from a ``ManualClock``: nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import math
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamfw_loopback.transport import LoopbackConsumer, LoopbackTransport, _Host
from streamfw_macrometa.wire import format_time, parse_time

import streamfw
import streamfw.aio
from streamfw.api import ConsumerOptions, StreamRef
from streamfw.broker import Broker, Deliver, Rules
from streamfw.message import Envelope, MessageId
from streamfw.testing.harness import ManualClock

WAIT = 5.0  # seconds a receive may take before the test calls it stuck
QUEUES = [1, 2, 3, 4, 10]  # refill = max(1, q // 2): 1, 1, 1, 2, 5
START = 1_700_000_000.2502  # 0.2 ms into a millisecond: float error cannot cross one
UTC = dt.timezone.utc


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def client(clock: ManualClock) -> Iterator[streamfw.Client]:
    with streamfw.connect(f"loopback://hot-{uuid.uuid4().hex}", clock=clock) as c:
        yield c


def _host(client: streamfw.Client) -> _Host:
    transport = client.transport
    assert isinstance(transport, LoopbackTransport)
    return transport._host


def _link(consumer: streamfw.Consumer) -> LoopbackConsumer:
    link = consumer._link
    assert isinstance(link, LoopbackConsumer)
    return link


def _permits(client: streamfw.Client, consumer: streamfw.Consumer) -> int:
    """The broker's permits for ``consumer``, deferred grants applied (a locked call)."""
    host = _host(client)
    return host.call(host.broker.permits, _link(consumer)._id)


def _refill(queue: int) -> int:
    return max(1, queue // 2)


# ------------------------------------------------------------------ permits in batches


@pytest.mark.parametrize("queue", QUEUES)
@pytest.mark.parametrize("locked", [True, False], ids=["locked", "unlocked"])
def test_permits_go_back_once_half_the_receiver_queue_is_taken(
    client: streamfw.Client, queue: int, locked: bool
) -> None:
    """After k of a full queue are taken the broker has refill * (k // refill) permits.

    Locked: permits are read (a locked call) after every take, so each receive takes the
    lock. Unlocked: a fresh queue per k, taken without a locked call in between (the
    receives after the first hand out without the lock; their grants are deferred).
    """
    refill = _refill(queue)
    for k in [queue] if locked else range(queue + 1):
        stream = client.stream(f"s{k}").create()
        with stream.consumer("sub", receiver_queue_size=queue) as consumer:
            with stream.producer() as producer:
                for i in range(queue):
                    producer.send(i)
            assert _permits(client, consumer) == 0
            taken = []
            for j in range(1, (queue if locked else k) + 1):
                message = consumer.receive(WAIT)
                assert message is not None
                taken.append(message.value)
                if locked:
                    assert _permits(client, consumer) == refill * (j // refill), j
            if not locked:
                assert _permits(client, consumer) == refill * (k // refill), k
            assert taken == list(range(len(taken)))


@pytest.mark.parametrize("queue", QUEUES)
def test_permits_taken_and_queued_always_add_up_to_the_receiver_queue(
    client: streamfw.Client, queue: int
) -> None:
    """A producer far ahead: the inbox never holds more than the queue, and what the broker
    may still send, what waits in the inbox and what is owed back make up one queue. Checked
    after runs of 1, 2, 3... receives (all but the first of a run hand out without the lock).
    """
    count = 5 * queue + 1
    stream = client.stream("orders").create()
    with stream.consumer("sub", receiver_queue_size=queue) as consumer:
        link = _link(consumer)
        with stream.producer() as producer:
            for i in range(count):
                producer.send(i)
        got: list[object] = []
        run = 1
        while len(got) < count:
            for _ in range(min(run, count - len(got))):
                message = consumer.receive(WAIT)
                assert message is not None
                got.append(message.value)
                message.ack()  # a consumer holds at most a queue of unacked messages
            run += 1
            assert len(link._inbox.items) <= queue
            owed = len(got) % _refill(queue)  # taken, their permits not given back yet
            assert _permits(client, consumer) + len(link._inbox.items) + owed == queue
        assert got == list(range(count))
        assert consumer.receive(0) is None
    assert stream.backlog() == 0


def _receive_all(
    consumer: streamfw.Consumer, count: int, between: Callable[[], object]
) -> list[object]:
    got: list[object] = []
    for _ in range(count):
        between()
        message = consumer.receive(WAIT)
        assert message is not None, f"stuck after {got}"
        got.append(message.value)
        message.ack()
    return got


@pytest.mark.parametrize("queue", QUEUES)
@pytest.mark.parametrize("path", ["unlocked", "locked", "interleaved", "threaded"])
def test_a_small_receiver_queue_still_gets_everything(
    client: streamfw.Client, queue: int, path: str
) -> None:
    """Liveness: no permit held back by the batching ever stops a delivery.

    unlocked: all sent first, then taken (hand-outs without the lock); locked: a locked
    call before every receive; interleaved: one send, one receive; threaded: a consumer
    thread waits in receive while the producer sends.
    """
    count = 3 * queue + 1
    stream = client.stream("orders").create()
    with stream.consumer("sub", receiver_queue_size=queue) as consumer:
        with stream.producer() as producer:
            if path == "threaded":
                got: list[object] = []
                worker = threading.Thread(
                    target=lambda: got.extend(_receive_all(consumer, count, lambda: None))
                )
                worker.start()
                for i in range(count):
                    producer.send(i)
                worker.join(WAIT * 2)
                assert not worker.is_alive()
            elif path == "interleaved":
                sent = iter(range(count))
                got = _receive_all(consumer, count, lambda: producer.send(next(sent)))
            else:
                for i in range(count):
                    producer.send(i)
                lock = stream.backlog if path == "locked" else lambda: None  # a locked call
                got = _receive_all(consumer, count, lock)
        assert got == list(range(count))
        assert consumer.receive(0) is None
    assert stream.backlog() == 0


@pytest.mark.anyio
@pytest.mark.parametrize("queue", QUEUES)
@pytest.mark.parametrize("producer_thread", [False, True], ids=["one-loop", "sync-thread"])
async def test_an_async_consumer_with_a_small_receiver_queue_gets_everything(
    queue: int, producer_thread: bool
) -> None:
    """The asyncio consumer takes from the same inbox (``receive(0)``): the same liveness,
    with the producer a task on its loop or a sync client in a thread."""
    count = 3 * queue + 1
    url = f"loopback://hot-aio-{uuid.uuid4().hex}"
    got: list[object] = []
    async with streamfw.aio.connect(url) as client:
        stream = await client.stream("orders").create()
        async with stream.consumer("sub", receiver_queue_size=queue) as consumer:

            async def consume() -> None:
                for _ in range(count):
                    message = await consumer.receive(WAIT)
                    assert message is not None, f"stuck after {got}"
                    got.append(message.value)
                    await message.ack()

            async with stream.producer() as producer:
                if producer_thread:
                    with streamfw.connect(url) as other:
                        sync_stream = other.stream("orders")

                        def produce_sync() -> None:
                            with sync_stream.producer() as sync_producer:
                                for i in range(count):
                                    sync_producer.send(i)

                        await asyncio.wait_for(
                            asyncio.gather(consume(), asyncio.to_thread(produce_sync)), WAIT * 2
                        )
                else:

                    async def produce() -> None:
                        for i in range(count):
                            await producer.send(i)

                    await asyncio.wait_for(asyncio.gather(consume(), produce()), WAIT * 2)
            assert got == list(range(count))
            assert await consumer.receive(0) is None
        assert await stream.backlog() == 0


@pytest.mark.parametrize("queue", [2, 4])
def test_queued_copies_gone_stale_give_their_permits_back(
    client: streamfw.Client, clock: ManualClock, queue: int
) -> None:
    """Ack timeouts make queued copies stale; dropping them still counts toward a refill, and
    every message comes again until acked."""
    stream = client.stream("orders").create()
    with stream.consumer(
        "sub", receiver_queue_size=queue, ack_timeout=5, type="shared"
    ) as consumer:
        with stream.producer() as producer:
            for i in range(3 * queue):
                producer.send(i)
        first = consumer.receive(WAIT)
        assert first is not None and first.value == 0
        clock.advance(6)  # everything it held times out, the copies in its inbox too
        seen: dict[object, int] = {}
        for _ in range(3 * queue):
            message = consumer.receive(WAIT)
            assert message is not None
            seen[message.value] = message.redelivery_count
            message.ack()
        assert consumer.receive(0) is None
        assert sorted(seen) == list(range(3 * queue))  # type: ignore[type-var]
        assert seen[0] == 1
    assert stream.backlog() == 0


@pytest.mark.parametrize("queue", [1, 4, 10])
def test_a_reader_batches_its_permits_and_reads_everything(
    client: streamfw.Client, queue: int
) -> None:
    stream = client.stream("orders").create()
    with stream.producer() as producer:
        for i in range(3 * queue + 1):
            producer.send(i)
    refill = _refill(queue)
    with stream.reader("earliest", receiver_queue_size=queue) as reader:
        for k in range(1, queue + 1):
            message = reader.receive(WAIT)
            assert message is not None and message.value == k - 1
            # each batch given back is sent at once: the broker keeps none of it
            assert _permits(client, reader) == 0
            assert len(_link(reader)._inbox.items) == queue - k + refill * (k // refill)
        rest = [reader.receive(WAIT) for _ in range(2 * queue + 1)]
        assert [m.value for m in rest if m is not None] == list(range(queue, 3 * queue + 1))
        assert reader.receive(0) is None


def test_a_pull_mode_consumer_gets_only_what_it_asked_for(client: streamfw.Client) -> None:
    stream = client.stream("orders").create()
    with stream.consumer("sub", receiver_queue_size=10, pull_mode=True) as consumer:
        link = _link(consumer)
        with stream.producer() as producer:
            for i in range(6):
                producer.send(i)
        assert _permits(client, consumer) == 0 and not link._inbox.items
        link.request(3)
        assert len(link._inbox.items) == 3 and _permits(client, consumer) == 0
        for i in range(2):  # asked for already: no permit comes back, no refill batch
            message = consumer.receive(WAIT)
            assert message is not None and message.value == i
            assert _permits(client, consumer) == 0
        assert len(link._inbox.items) == 1
        link.request(3)  # one asked for is still queued: two more come
        assert len(link._inbox.items) == 3 and _permits(client, consumer) == 0
        values = [m.value for m in consumer.receive_many(4, WAIT)]
        assert values == [2, 3, 4, 5]
        assert _permits(client, consumer) == 0


# --------------------------------------------------------------- publish times to the ms


def _published(
    client: streamfw.Client, clock: ManualClock, steps: list[float]
) -> list[dt.datetime]:
    stream = client.stream("times").create()
    with stream.consumer("sub") as consumer, stream.producer() as producer:
        for step in steps:
            clock.advance(step)
            producer.send(b"x")
        got = [consumer.receive(WAIT) for _ in steps]
    return [m.publish_time for m in got if m is not None]


def test_a_publish_time_is_utc_and_whole_milliseconds(
    client: streamfw.Client, clock: ManualClock
) -> None:
    (when,) = _published(client, clock, [0])
    assert when.tzinfo is not None and when.utcoffset() == dt.timedelta(0)
    assert when.microsecond % 1000 == 0
    assert when == dt.datetime(2023, 11, 14, 22, 13, 20, 250_000, tzinfo=UTC)
    assert parse_time(format_time(when)) == when  # the same over a socket (wire.py)


@pytest.mark.parametrize(
    ("steps", "distinct"),
    [
        ([0, 0], 1),  # one instant
        ([0, 0.0003], 1),  # .2502 and .2505: one millisecond
        ([0, 0.0005], 1),  # .2502 and .2507
        ([0, 0.0005, 0.0005], 2),  # then .2512: the next millisecond
        ([0, 0.0009], 2),  # .2511
        ([0.0004, 0.0003], 1),  # .2506 and .2509: the clock moved, the ms did not
    ],
)
def test_messages_within_one_millisecond_share_one_publish_time(
    client: streamfw.Client, clock: ManualClock, steps: list[float], distinct: int
) -> None:
    times = _published(client, clock, steps)
    assert len(times) == len(steps)
    assert len(set(times)) == distinct
    assert all(t.microsecond % 1000 == 0 for t in times)
    assert times == sorted(times)
    if distinct == 2:
        assert times[-1] - times[0] == dt.timedelta(milliseconds=1)


@given(now=st.floats(0, 2**32, exclude_max=True))
def test_a_publish_time_is_exactly_the_clock_truncated_to_the_millisecond(now: float) -> None:
    """Exactly ``int(clock() * 1000)`` ms after the epoch: no rounding into another ms, no
    microseconds left over (up to 2106, where a float still resolves a quarter microsecond)."""
    broker = Broker(clock=lambda: now)
    ref = StreamRef("t")
    broker.create_stream(ref)
    broker.subscribe(ref, "sub", ConsumerOptions())
    broker.publish(ref, Envelope(b"x"))
    (event,) = broker.events()
    assert isinstance(event, Deliver)
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert event.delivery.publish_time == epoch + dt.timedelta(milliseconds=int(now * 1000))


# ------------------------------------------------------------------------ publish_from


def _broker_with_producer() -> tuple[Broker, int, int]:
    """A broker with streams a and b, a subscription on b, and a producer on b."""
    broker = Broker(clock=ManualClock(START))
    for name in "ab":
        broker.create_stream(StreamRef(name))
    consumer = broker.subscribe(StreamRef("b"), "sub", ConsumerOptions())
    return broker, broker.open_producer(StreamRef("b")), consumer


def test_publish_from_stores_in_the_producers_stream() -> None:
    broker, producer, consumer = _broker_with_producer()
    first = broker.publish_from(producer, Envelope(b"1", {"k": "v"}, "key"))
    second = broker.publish(StreamRef("b"), Envelope(b"2"))  # one sequence with publish()
    third = broker.publish_from(producer, Envelope(b"3"))
    assert [m.stream for m in (first, second, third)] == ["b"] * 3
    assert [m.entry for m in (first, second, third)] == [0, 1, 2]
    assert broker.backlog(StreamRef("b")) == 3 and broker.backlog(StreamRef("a")) == 0
    events = broker.events()
    delivered = [e.delivery for e in events if isinstance(e, Deliver)]
    assert [(d.message_id, d.payload) for d in delivered] == [
        (first, b"1"),
        (second, b"2"),
        (third, b"3"),
    ]
    assert delivered[0].properties == {"k": "v"} and delivered[0].key == "key"
    assert events == [Deliver(consumer, d) for d in delivered]


@pytest.mark.parametrize("how", ["closed", "unknown", "stream deleted"])
def test_publish_from_a_producer_that_is_gone_is_refused(how: str) -> None:
    broker, producer, _ = _broker_with_producer()
    if how == "closed":
        broker.close_producer(producer)
    elif how == "unknown":
        producer += 100
    else:
        broker.delete_stream(StreamRef("b"), force=True)
        broker.create_stream(StreamRef("b"))  # a new stream of that name is not its stream
    with pytest.raises(streamfw.LocalProtocolError, match=f"producer {producer} is closed"):
        broker.publish_from(producer, Envelope(b"x"))
    assert broker.stats(StreamRef("b")).published == 0


@pytest.mark.parametrize("recreate", [False, True])
def test_a_send_after_a_forced_delete_raises_stream_deleted(
    client: streamfw.Client, recreate: bool
) -> None:
    stream = client.stream("orders").create()
    with stream.producer() as producer:
        producer.send(1)
        stream.delete(force=True)
        if recreate:
            stream.create()
        with pytest.raises(streamfw.StreamDeleted, match="orders"):
            producer.send(2)
    if recreate:
        assert stream.stats()["published"] == 0


# ------------------------------------------------------------------------------- acks


@pytest.fixture
def received(
    client: streamfw.Client,
) -> Iterator[tuple[streamfw.Stream, streamfw.Consumer, list[streamfw.Message]]]:
    """Stream ``orders`` with three messages, all received by one consumer, none acked."""
    stream = client.stream("orders").create()
    with stream.consumer("sub", nack_delay=0) as consumer:
        with stream.producer() as producer:
            for i in range(3):
                producer.send(i)
        messages = [consumer.receive(WAIT) for _ in range(3)]
        yield stream, consumer, [m for m in messages if m is not None]


def _redelivered(stream: streamfw.Stream) -> list[object]:
    """What the subscription still holds, after its consumer went."""
    with stream.consumer("sub") as again:
        return [m.value for m in iter(lambda: again.receive(0.01), None)]


def _outstanding(client: streamfw.Client, consumer: streamfw.Consumer, mid: MessageId) -> bool:
    """The broker's own view, without applying deferred acks (no lock taken)."""
    return _host(client).broker.is_outstanding(_link(consumer)._id, mid)


def test_an_ack_of_the_handed_out_id_is_deferred_an_equal_copy_is_applied_at_once(
    client: streamfw.Client,
    received: tuple[streamfw.Stream, streamfw.Consumer, list[streamfw.Message]],
) -> None:
    stream, consumer, (m0, m1, m2) = received
    m0.ack()  # the very id handed out: applied at the next locked section
    assert _outstanding(client, consumer, m0.id)
    copy = MessageId(m1.id.stream, m1.id.ledger, m1.id.entry)
    assert copy == m1.id and copy is not m1.id
    consumer.ack(copy)  # checked: the broker has it before ack returns
    assert not _outstanding(client, consumer, m1.id)
    assert stream.backlog() == 1  # a locked call: the deferred ack counts now
    assert not _outstanding(client, consumer, m0.id)
    m2.ack()
    consumer.close()
    assert _redelivered(stream) == [] and stream.backlog() == 0


@pytest.mark.parametrize("forged", [False, True])
def test_an_id_of_another_stream_with_the_same_entry_disturbs_nothing(
    client: streamfw.Client,
    received: tuple[streamfw.Stream, streamfw.Consumer, list[streamfw.Message]],
    forged: bool,
) -> None:
    stream, consumer, (m0, _, m2) = received
    if forged:  # the same ledger and entry, another stream's name
        other = MessageId("elsewhere", m0.id.ledger, m0.id.entry)
    else:
        elsewhere = client.stream("elsewhere").create()
        with elsewhere.consumer("sub") as theirs, elsewhere.producer() as producer:
            producer.send("theirs")
            message = theirs.receive(WAIT)
            assert message is not None
            other = message.id
    assert other.entry == m0.id.entry
    for act in (consumer.ack, consumer.nack):
        with pytest.raises(streamfw.LocalProtocolError, match="is not a message of stream"):
            act(other)
    m0.ack()
    assert _outstanding(client, consumer, m0.id)  # still the deferred path: m0 is handed out
    m2.ack()
    consumer.close()  # m1 goes back, m0 and m2 do not
    assert _redelivered(stream) == [1]


def test_a_nack_after_an_ack_and_a_second_ack_change_nothing(
    received: tuple[streamfw.Stream, streamfw.Consumer, list[streamfw.Message]],
) -> None:
    stream, consumer, (m0, m1, m2) = received
    m0.ack()
    m0.nack()  # nack_delay=0: a nack that counted would queue it again at once
    m1.ack()
    m1.ack()
    consumer.ack(MessageId(m1.id.stream, m1.id.ledger, m1.id.entry))
    assert consumer.receive(0.01) is None
    assert stream.backlog() == 1
    m2.nack()
    again = consumer.receive(WAIT)
    assert again is not None and again.value == 2 and again.id == m2.id
    again.ack()
    m2.ack()  # the first copy's id, after its redelivery was acked
    consumer.close()
    assert _redelivered(stream) == [] and stream.backlog() == 0


def test_an_id_never_delivered_raises_in_the_caller(
    received: tuple[streamfw.Stream, streamfw.Consumer, list[streamfw.Message]],
) -> None:
    stream, consumer, (m0, _, _) = received
    with pytest.raises(streamfw.LocalProtocolError, match="never delivered"):
        consumer.ack(MessageId(m0.id.stream, m0.id.ledger, 99))
    m0.ack()
    consumer.close()
    assert _redelivered(stream) == [1, 2]


# --------------------------------------------------------------------------- timers


def _bump_by_ack_timeout(broker: Broker, ref: StreamRef) -> Callable[[], object]:
    broker.subscribe(ref, "sub", ConsumerOptions(ack_timeout=5))
    return lambda: broker.publish(ref, Envelope(b"x"))


def _bump_by_nack_delay(broker: Broker, ref: StreamRef) -> Callable[[], object]:
    consumer = broker.subscribe(ref, "sub", ConsumerOptions(nack_delay=1))
    mid = broker.publish(ref, Envelope(b"x"))
    return lambda: broker.nack(consumer, mid)


def _bump_by_failover_switch(broker: Broker, ref: StreamRef) -> Callable[[], object]:
    broker.subscribe(ref, "sub", ConsumerOptions(type="failover", name="c1", priority_level=1))
    options = ConsumerOptions(type="failover", name="c0", priority_level=0)
    return lambda: broker.subscribe(ref, "sub", options)  # it becomes active after a delay


def _bump_by_ttl(broker: Broker, ref: StreamRef) -> Callable[[], object]:
    return lambda: setattr(broker, "message_ttl", 60)


@pytest.mark.parametrize(
    "arrange",
    [_bump_by_ack_timeout, _bump_by_nack_delay, _bump_by_failover_switch, _bump_by_ttl],
    ids=["ack timeout", "nack delay", "failover switch", "message ttl"],
)
def test_the_schedule_moves_when_a_timer_is_added_or_the_ttl_set(
    arrange: Callable[[Broker, StreamRef], Callable[[], object]],
) -> None:
    broker = Broker(clock=ManualClock(START), rules=Rules(failover_delay=1))
    ref = StreamRef("t")
    broker.create_stream(ref)
    act = arrange(broker, ref)
    before, deadline = broker.schedule, broker.next_deadline()
    act()
    assert broker.schedule > before
    assert broker.next_deadline() != deadline or broker.message_ttl == 60


def test_a_nack_delay_added_after_the_host_saw_no_timer_still_redelivers_in_order(
    client: streamfw.Client, clock: ManualClock
) -> None:
    """Once the delay is over, the redelivery takes the next permit, before a message
    published later: a hand-out without the lock must not miss that the timer is due."""
    stream = client.stream("orders").create()
    with (
        stream.consumer("sub", type="shared", receiver_queue_size=2, nack_delay=1) as consumer,
        stream.producer() as producer,
    ):
        got: list[tuple[object, int]] = []

        def take() -> None:
            message = consumer.receive(WAIT)
            assert message is not None
            got.append((message.value, message.redelivery_count))
            if (message.value, message.redelivery_count) == ("a", 0):
                message.nack()
            else:
                message.ack()

        for value in "abc":
            producer.send(value)
        assert _host(client).next_due == math.inf  # no timer anywhere
        take()  # "a", nacked
        assert _host(client).next_due == 1.0 + START
        take()  # "b", before the delay is over
        clock.advance(1.5)
        producer.send("d")  # queued behind "c": the delay ended, but no receive saw it
        take()  # "c": the redelivery of "a" takes the permit it gives back
        producer.send("e")
        for _ in range(3):
            take()
        assert got == [("a", 0), ("b", 0), ("c", 0), ("d", 0), ("a", 1), ("e", 0)]
        assert consumer.receive(0) is None


def test_an_ack_timeout_added_by_a_publish_is_seen_by_an_unlocked_hand_out(
    client: streamfw.Client, clock: ManualClock
) -> None:
    """No timer, then a publish (no other locked section) adds ack timeouts: once due, the
    queued copy of "b" is stale and "a" comes back first, counted."""
    stream = client.stream("orders").create()
    with stream.consumer("sub", type="shared", ack_timeout=5) as consumer:
        assert _host(client).next_due == math.inf
        with stream.producer() as producer:
            producer.send("a")
            producer.send("b")
        first = consumer.receive(WAIT)
        assert first is not None and first.value == "a"
        clock.advance(6)
        got = [consumer.receive(WAIT), consumer.receive(WAIT)]
        assert [(m.value, m.redelivery_count) for m in got if m is not None] == [
            ("a", 1),
            ("b", 1),
        ]


def test_a_ttl_set_on_the_broker_is_seen_by_the_next_receive_after_a_send(
    client: streamfw.Client, clock: ManualClock
) -> None:
    stream = client.stream("orders").create()
    transport = client.transport
    assert isinstance(transport, LoopbackTransport)
    with stream.consumer("sub") as consumer, stream.producer() as producer:
        for value in "abc":
            producer.send(value)
        first = consumer.receive(WAIT)  # "b" and "c" stay queued
        assert first is not None and first.value == "a"
        assert _host(client).next_due == math.inf
        transport.broker.message_ttl = 1
        clock.advance(5)
        producer.send("d")  # routes, and takes no other lock
        young = consumer.receive(WAIT)
        assert young is not None and young.value == "d"  # "b" and "c" expired
        assert consumer.receive(0) is None


# --------------------------------------------------------------------------- Deliver


def test_deliver_events_are_values() -> None:
    broker, _, consumer = _broker_with_producer()
    mid = broker.publish(StreamRef("b"), Envelope(b"x"))
    (event,) = broker.events()
    assert isinstance(event, Deliver) and event.__class__ is Deliver
    assert event == Deliver(consumer, event.delivery) and event == Deliver(
        consumer=consumer, delivery=event.delivery
    )
    assert event != Deliver(consumer + 1, event.delivery)
    assert (event.consumer, event.delivery.message_id) == (consumer, mid)
    match event:
        case Deliver(consumer=who, delivery=what):
            assert (who, what.payload) == (consumer, b"x")
        case _:
            pytest.fail(f"{event!r} does not match Deliver(...)")
    assert repr(event).startswith("Deliver(consumer=")


class _SwitchOnAppend(collections.deque):  # type: ignore[type-arg]
    """A deferred queue that runs ``other`` right after its next append: another thread's
    receive landing exactly where CPython may switch threads inside a hand-over."""

    other: Callable[[], object] | None = None

    def append(self, item: object) -> None:
        super().append(item)
        other, self.other = self.other, None
        if other is not None:
            other()


def test_a_receive_landing_inside_another_hand_over_repeats_and_loses_no_permit(
    client: streamfw.Client,
) -> None:
    """Two threads receiving on one consumer without the lock: the second lands right after
    the first queued its batch of permits. Every hand-over is counted once, so the permits
    given back, those still owed and the inbox still make up exactly one receiver queue."""
    stream = client.stream("orders").create()
    host = _host(client)
    with stream.consumer("sub", receiver_queue_size=4) as consumer, stream.producer() as producer:
        for i in range(4):
            producer.send(i)
        got = [consumer.receive(WAIT)]  # a locked receive; the other three stay queued
        deferred = _SwitchOnAppend(host.deferred)
        deferred.other = lambda: got.append(consumer.receive(WAIT))
        host.deferred = deferred
        got.append(consumer.receive(WAIT))  # the second take gives 2 back, then "switches"
        # the receive that landed inside took 2 and returned first; nothing was taken twice
        assert [m.value for m in got if m is not None] == [0, 2, 1]
        link = _link(consumer)
        owed = len(got) % _refill(4)
        assert _permits(client, consumer) + len(link._inbox.items) + owed == 4


def test_publish_times_before_1970_are_floored_to_the_millisecond() -> None:
    for now, expected_ms in [(-0.001, -1), (-0.0015, -2), (-1.0, -1000), (0.0, 0)]:
        broker = Broker(clock=lambda now=now: now)  # type: ignore[misc]
        ref = StreamRef("s")
        broker.create_stream(ref)
        broker.subscribe(ref, "sub", ConsumerOptions())
        broker.publish(ref, Envelope(b"x"))
        [event] = broker.events()
        assert isinstance(event, Deliver)
        when = event.delivery.publish_time
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        assert when == epoch + dt.timedelta(milliseconds=expected_ms), now
