"""Broker-core bounds (issue 8): permits, timer lifetime, ledger ids, backlog quota and caps."""

from __future__ import annotations

import gc
import time
import weakref

import pytest

from streamfw import BacklogQuotaExceeded, ConfigError, LimitExceeded, SendError
from streamfw.api import ConsumerOptions, ReaderOptions, StreamRef, first_ledger_now
from streamfw.broker import (
    MAX_SECONDS,
    Broker,
    Deliver,
    Limits,
)
from streamfw.message import Envelope, MessageId
from streamfw.testing import ManualClock

S = StreamRef("s")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make(clock: ManualClock, **limits: int) -> Broker:
    b = Broker(clock=clock, limits=Limits(**limits), first_ledger=first_ledger_now())
    b.create_stream(S)
    return b


def deliveries(broker: Broker) -> list[MessageId]:
    """What the broker handed out since last asked, *not* handed over (no permit back)."""
    return [e.delivery.message_id for e in broker.events() if isinstance(e, Deliver)]


# ---------------------------------------------------------------------------- permits


def test_ack_timeouts_redeliver_only_within_permits(clock: ManualClock) -> None:
    """A consumer that stops taking messages gets no more, however often they time out."""
    broker = make(clock)
    c = broker.subscribe(S, "sub", ConsumerOptions(receiver_queue_size=5, ack_timeout=0.1))
    for i in range(20):
        broker.publish(S, Envelope(bytes([i])))
    assert len(deliveries(broker)) == 5 and broker.permits(c) == 0
    for _ in range(30):  # 3 s of ack timeouts
        clock.advance(0.1)
        broker.tick()
        assert deliveries(broker) == []  # before permits: 5 redeliveries every 0.1 s
    broker.grant(c, 2)  # the front end handed two over
    assert len(deliveries(broker)) == 2


def test_grant_never_exceeds_the_receiver_queue_and_ignores_closed_consumers(
    clock: ManualClock,
) -> None:
    broker = make(clock)
    c = broker.subscribe(S, "sub", ConsumerOptions(receiver_queue_size=3))
    broker.grant(c, 100)
    assert broker.permits(c) == 3
    broker.close_consumer(c)
    broker.grant(c)  # a frame written after the consumer went: nothing to do


# ----------------------------------------------------------------------------- timers


def test_deleting_a_stream_leaves_no_timer_holding_it(clock: ManualClock) -> None:
    broker = make(clock)
    c = broker.subscribe(S, "sub", ConsumerOptions(nack_delay=60, ack_timeout=30))
    broker.nack(c, broker.publish(S, Envelope(b"n" * 10_000)))
    broker.publish(S, Envelope(b"held"))  # in flight: an ack-timeout timer
    stream = weakref.ref(broker._streams[S])
    assert broker.next_deadline() is not None
    broker.delete_stream(S, force=True)
    gc.collect()
    assert stream() is None  # before: Broker._timer_subs kept it (and its log) alive
    assert broker.next_deadline() is None


def test_deleting_a_subscription_or_unsubscribing_cancels_its_timers(clock: ManualClock) -> None:
    broker = make(clock)
    a = broker.subscribe(S, "a", ConsumerOptions(nack_delay=60))
    b = broker.subscribe(S, "b", ConsumerOptions(nack_delay=60))
    mid = broker.publish(S, Envelope(b"x"))
    broker.nack(a, mid)
    broker.nack(b, mid)
    sub_a = weakref.ref(broker._streams[S].subs["a"])
    broker.close_consumer(a)
    broker.delete_subscription(S, "a")
    broker.unsubscribe(b)
    gc.collect()
    assert sub_a() is None
    assert broker.next_deadline() is None


def test_cancelled_timers_do_not_pile_up(clock: ManualClock) -> None:
    """Acked messages' ack-timeout timers are dropped, not kept until they are due."""
    broker = make(clock)
    c = broker.subscribe(S, "sub", ConsumerOptions(ack_timeout=3600))
    for _ in range(10_000):
        broker.ack(c, broker.publish(S, Envelope(b"")))
        broker.grant(c)
    assert len(broker._timers) <= 2_100  # compacted whenever over half are dead


# ---------------------------------------------------------------------------- ledgers


def test_each_broker_instance_numbers_its_ledgers_afresh(clock: ManualClock) -> None:
    """Emulator runs never hand out the same id for the same stream; later runs' are larger."""
    ids = []
    for _ in range(20):
        # the same manual clock: ids must not depend on it
        broker = Broker(clock=clock, first_ledger=first_ledger_now())
        broker.create_stream(S)
        ids.append(broker.publish(S, Envelope(b"x")))
        time.sleep(0.002)  # a restart takes longer than this
    assert len(set(ids)) == 20
    assert ids == sorted(ids)


def test_first_ledger_is_injectable_and_ids_stay_ordered(clock: ManualClock) -> None:
    broker = Broker(clock=clock, first_ledger=2**40)
    broker.create_stream(S)
    broker.create_stream(StreamRef("t"))
    first, second = (broker.publish(S, Envelope(b"")) for _ in range(2))
    assert first.ledger == 2**40 and first < second
    assert broker.publish(StreamRef("t"), Envelope(b"")).ledger == 2**40 + 1
    with pytest.raises(ConfigError, match="first_ledger"):
        Broker(clock=clock, first_ledger=-1)


# ---------------------------------------------------------------------- backlog quota


def test_a_full_backlog_refuses_the_publish_with_a_send_error(clock: ManualClock) -> None:
    broker = make(clock, backlog_quota_messages=3)
    c = broker.subscribe(S, "sub", ConsumerOptions())
    mids = [broker.publish(S, Envelope(b"x")) for _ in range(3)]
    with pytest.raises(BacklogQuotaExceeded, match="backlog quota exceeded on stream s") as info:
        broker.publish(S, Envelope(b"y"))
    assert isinstance(info.value, SendError)
    assert broker.backlog(S) == 3  # nothing stored, nothing lost
    broker.ack(c, mids[0])  # the consumer catches up: room again
    broker.publish(S, Envelope(b"y"))
    assert broker.backlog(S) == 3


def test_the_byte_quota_counts_payload_bytes(clock: ManualClock) -> None:
    broker = make(clock, backlog_quota_bytes=10)
    broker.subscribe(S, "sub", ConsumerOptions())
    broker.publish(S, Envelope(b"12345"))
    broker.publish(S, Envelope(b"12345"))
    with pytest.raises(BacklogQuotaExceeded, match="10 bytes"):
        broker.publish(S, Envelope(b"1"))
    with pytest.raises(BacklogQuotaExceeded, match="larger than it"):
        make(clock, backlog_quota_bytes=10).publish(S, Envelope(b"x" * 11))


def test_without_a_subscription_the_oldest_messages_make_room(clock: ManualClock) -> None:
    """Nobody is owed a message outside every backlog: retention drops it, publish succeeds."""
    broker = make(clock, backlog_quota_messages=3)
    reader = broker.open_reader(S, ReaderOptions(start="earliest", receiver_queue_size=1))
    for i in range(10):
        broker.publish(S, Envelope(bytes([i])))
    assert broker.stats(S).storage_size == 3
    broker.close_consumer(reader)
    late = broker.subscribe(S, "late", ConsumerOptions(initial_position="earliest"))
    assert [e.delivery.payload for e in broker.events() if isinstance(e, Deliver)][-3:] == [
        bytes([7]),
        bytes([8]),
        bytes([9]),
    ]
    broker.close_consumer(late)


def test_stream_and_subscription_caps(clock: ManualClock) -> None:
    broker = make(clock, max_streams=2, max_subscriptions=1)
    broker.create_stream(StreamRef("t"))
    with pytest.raises(LimitExceeded, match="max_streams"):
        broker.create_stream(StreamRef("u"))
    broker.subscribe(S, "one", ConsumerOptions())
    with pytest.raises(LimitExceeded, match="max_subscriptions"):
        broker.subscribe(S, "two", ConsumerOptions())
    broker.open_reader(S, ReaderOptions())  # readers are per connection, not capped here
    broker.delete_stream(StreamRef("t"))
    broker.create_stream(StreamRef("u"))


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigError, match="backlog_quota_messages"):
        Limits(backlog_quota_messages=0)


# ------------------------------------------------------------------------ TTL, expiry


@pytest.mark.parametrize("bad", [-1, MAX_SECONDS + 1, 10**400, True])
def test_ttl_and_expiry_refuse_values_that_would_break_the_tick(
    clock: ManualClock, bad: int
) -> None:
    broker = make(clock)
    with pytest.raises(ConfigError, match="seconds"):
        broker.message_ttl = bad
    with pytest.raises(ConfigError, match="seconds"):
        broker.expire(S, bad)
    broker.message_ttl = MAX_SECONDS
    broker.tick()  # the largest accepted value works
