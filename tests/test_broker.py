"""Broker-core rules that the public API does not reach directly (TTL, expiry, stats, timers)."""

from __future__ import annotations

import pytest

from streamfw import LocalProtocolError, StreamNotFound
from streamfw.api import (
    ConsumerOptions,
    ConsumerStats,
    ReaderOptions,
    StreamRef,
    StreamStats,
    first_ledger_now,
)
from streamfw.broker import (
    ActiveChanged,
    Broker,
    ConsumerClosed,
    Deliver,
    Event,
    ProducerClosed,
)
from streamfw.message import Envelope, MessageId
from streamfw.testing import ManualClock

S = StreamRef("s")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def broker(clock: ManualClock) -> Broker:
    b = Broker(clock=clock, first_ledger=first_ledger_now())
    b.create_stream(S)
    return b


def drain(broker: Broker) -> list[Event]:
    """The broker's events, each delivery handed over at once (its permit given back)."""
    out: list[Event] = []
    while events := broker.events():
        out += events
        for e in events:
            if isinstance(e, Deliver):
                broker.grant(e.consumer)
    return out


def delivered(broker: Broker) -> list[tuple[int, bytes, int]]:
    return [
        (e.consumer, e.delivery.payload, e.delivery.redelivery_count)
        for e in drain(broker)
        if isinstance(e, Deliver)
    ]


def test_publish_time_comes_from_the_injected_clock(broker: Broker, clock: ManualClock) -> None:
    c = broker.subscribe(S, "sub", ConsumerOptions())
    broker.publish(S, Envelope(b"x"))
    (event,) = broker.events()
    assert isinstance(event, Deliver) and event.consumer == c
    assert event.delivery.publish_time.timestamp() == clock()


def test_timers_are_reported_and_run_only_when_due(broker: Broker, clock: ManualClock) -> None:
    c = broker.subscribe(S, "sub", ConsumerOptions(type="shared", nack_delay=5, ack_timeout=20))
    mid = broker.publish(S, Envelope(b"x"))
    drain(broker)
    assert broker.next_deadline() == clock() + 20
    broker.nack(c, mid)
    assert broker.next_deadline() == clock() + 5  # the stale ack-timeout entry is skipped
    clock.advance(4.9)
    broker.tick()
    assert delivered(broker) == []
    clock.advance(0.2)
    broker.tick()
    assert delivered(broker) == [(c, b"x", 1)]


def test_message_ttl_expires_unacked_messages(broker: Broker, clock: ManualClock) -> None:
    broker.subscribe(S, "sub", ConsumerOptions(receiver_queue_size=1))
    for i in range(3):
        broker.publish(S, Envelope(bytes([i])))
    broker.message_ttl = 60
    clock.advance(61)
    broker.tick()
    assert broker.backlog(S) == 0


def test_expire_acks_old_messages_everywhere(broker: Broker, clock: ManualClock) -> None:
    c = broker.subscribe(S, "sub", ConsumerOptions(receiver_queue_size=1))
    broker.publish(S, Envelope(b"old"))
    clock.advance(100)
    broker.publish(S, Envelope(b"new"))
    drain(broker)
    broker.expire(S, 50)
    assert broker.backlog(S) == 1
    assert delivered(broker) == [(c, b"new", 0)]  # the held old one was dropped, room freed


def test_stats_are_a_typed_value(broker: Broker) -> None:
    broker.subscribe(S, "sub", ConsumerOptions(type="shared", name="c1"))
    producer = broker.open_producer(S)
    broker.publish(S, Envelope(b"abc"))
    stats = broker.stats(S)
    assert isinstance(stats, StreamStats)
    assert (stats.published, stats.storage_size, stats.producers) == (1, 3, (producer,))
    sub = stats.subscriptions["sub"]
    assert (sub.type, sub.backlog, sub.unacked) == ("shared", 1, 1)
    assert sub.consumers == (ConsumerStats("c1", 1),)


def test_forced_delete_closes_attached_clients(broker: Broker) -> None:
    c = broker.subscribe(S, "sub", ConsumerOptions())
    p = broker.open_producer(S)
    broker.delete_stream(S, force=True)
    events = broker.events()
    assert ConsumerClosed(c, "stream s was deleted") in events
    assert ProducerClosed(p, "stream s was deleted") in events
    with pytest.raises(StreamNotFound):
        broker.publish(S, Envelope(b"x"))


def test_failover_reports_who_is_active(broker: Broker) -> None:
    a = broker.subscribe(S, "sub", ConsumerOptions(type="failover"))
    assert broker.events() == [ActiveChanged(a, True)]
    b = broker.subscribe(S, "sub", ConsumerOptions(type="failover"))
    active, standby = (a, b) if broker.is_active(a) else (b, a)
    assert not broker.is_active(standby)
    changed = broker.events()
    assert (changed == [ActiveChanged(b, False)]) == (active == a)
    broker.close_consumer(active)
    assert broker.events()[-1] == ActiveChanged(standby, True)
    assert broker.is_active(standby)


def test_acks_for_ids_never_delivered_are_refused(broker: Broker) -> None:
    c = broker.subscribe(S, "sub", ConsumerOptions())
    ledger = broker.publish(S, Envelope(b"x")).ledger  # ids are not hard-coded: see below
    with pytest.raises(LocalProtocolError, match="never delivered"):
        broker.ack(c, MessageId("s", ledger, 99))
    with pytest.raises(LocalProtocolError, match="not a message of stream"):
        broker.ack(c, MessageId("other", ledger, 0))
    with pytest.raises(LocalProtocolError, match="not a message of stream"):
        broker.ack(c, MessageId("s", ledger + 1, 0))
    broker.close_consumer(c)
    with pytest.raises(LocalProtocolError, match="closed"):
        broker.ack(c, MessageId("s", ledger, 0))


def test_acks_are_idempotent_and_trim_the_log(broker: Broker) -> None:
    c = broker.subscribe(S, "sub", ConsumerOptions())
    mid = broker.publish(S, Envelope(b"x"))
    broker.ack(c, mid)
    broker.ack(c, mid)
    assert broker.backlog(S) == 0
    assert broker.stats(S).storage_size == 0  # nobody needs it: gone from the log


def test_reader_from_a_foreign_id_is_refused(broker: Broker) -> None:
    with pytest.raises(LocalProtocolError, match="not a message of stream"):
        broker.open_reader(S, ReaderOptions(start=MessageId("other", 999, 0)))


def test_a_reader_after_an_id_of_another_ledger_is_positioned_as_pulsar_does(
    broker: Broker,
) -> None:
    """An id from before a restart (older ledger): everything retained is after it."""
    mid = broker.publish(S, Envelope(b"a"))
    broker.publish(S, Envelope(b"b"))
    older = broker.open_reader(S, ReaderOptions(start=MessageId("s", mid.ledger - 1, 10**6)))
    newer = broker.open_reader(S, ReaderOptions(start=MessageId("s", mid.ledger + 1, 0)))
    got = [(e.consumer, e.delivery.payload) for e in drain(broker) if isinstance(e, Deliver)]
    assert got == [(older, b"a"), (older, b"b")]
    broker.publish(S, Envelope(b"c"))
    assert (newer, b"c", 0) in delivered(broker)


def test_unsubscribe_refused_while_others_attached(broker: Broker) -> None:
    a = broker.subscribe(S, "sub", ConsumerOptions(type="shared"))
    b = broker.subscribe(S, "sub", ConsumerOptions(type="shared"))
    with pytest.raises(Exception, match="other consumers"):
        broker.unsubscribe(a)
    broker.close_consumer(b)
    broker.unsubscribe(a)
    assert broker.subscriptions(S) == []
