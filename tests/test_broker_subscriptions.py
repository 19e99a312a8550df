"""Broker-core subscription features (issue 11): dead letters, Key_Shared, pull mode,
Failover's active consumer and delay, the redelivery-count rules (docs/protocol.md §15)."""

from __future__ import annotations

import pytest

from streamfw.api import ConsumerOptions, ReaderOptions, StreamRef
from streamfw.broker import ORIGIN_MESSAGE_ID, REAL_TOPIC, Broker, Deliver, Limits, Rules
from streamfw.errors import ConfigError
from streamfw.message import Delivery, Envelope
from streamfw.sticky import failover_active, key_hash, key_shared_points, murmur3
from streamfw.testing import ManualClock

S = StreamRef("s")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make(clock: ManualClock, **rules: object) -> Broker:
    b = Broker(clock=clock, rules=Rules(**rules))  # type: ignore[arg-type]
    b.create_stream(S)
    return b


@pytest.fixture
def broker(clock: ManualClock) -> Broker:
    return make(clock)


def take(broker: Broker) -> list[tuple[int, Delivery]]:
    """Deliveries so far, each handed over at once (its permit given back)."""
    out = []
    while events := broker.events():
        for e in events:
            if isinstance(e, Deliver):
                out.append((e.consumer, e.delivery))
                broker.grant(e.consumer)
    return out


def payloads(got: list[tuple[int, Delivery]]) -> list[tuple[int, bytes, int]]:
    return [(c, d.payload, d.redelivery_count) for c, d in got]


# ------------------------------------------------------------------------------ murmur3


def test_murmur3_is_pulsars() -> None:
    # Murmur3 x86 32-bit, seed 0 (reference vectors), with Java's sign bit cleared.
    assert murmur3(b"") == 0
    assert murmur3(b"hello") == 0x248BFA47
    assert murmur3(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723
    assert key_hash(None) == murmur3(b"NONE_KEY")


# --------------------------------------------------------------------------- dead letters


def test_a_message_failed_past_the_limit_goes_to_the_dead_letter_stream_once(
    broker: Broker,
) -> None:
    opts = ConsumerOptions(type="shared", nack_delay=0, max_redeliver_count=2)
    c = broker.subscribe(S, "sub", opts)
    mid = broker.publish(S, Envelope(b"poison", {"trace": "t1"}, key="k"))
    counts = []
    for _ in range(3):
        ((_, d),) = take(broker)
        counts.append(d.redelivery_count)
        broker.nack(c, d.message_id)
    assert counts == [0, 1, 2]  # delivered max_redeliver_count + 1 times
    assert take(broker) == []  # never redelivered again
    assert broker.backlog(S) == 0  # acknowledged on the origin subscription
    dlq = StreamRef("s-sub-DLQ")
    reader = broker.open_reader(dlq, ReaderOptions(start="earliest"))
    ((_, dead),) = [(r, d) for r, d in take(broker) if r == reader]
    assert dead.payload == b"poison" and dead.key == "k"
    assert dict(dead.properties) == {
        "trace": "t1",
        REAL_TOPIC: "s",
        ORIGIN_MESSAGE_ID: f"{mid.ledger}:{mid.entry}:-1",
    }
    assert broker.stats(dlq).published == 1


def test_an_ack_timeout_at_the_limit_dead_letters_too(broker: Broker, clock: ManualClock) -> None:
    opts = ConsumerOptions(
        type="key_shared", ack_timeout=5, max_redeliver_count=1, dead_letter_stream="dead"
    )
    broker.subscribe(S, "sub", opts)
    broker.publish(S, Envelope(b"slow"))
    assert [d.redelivery_count for _, d in take(broker)] == [0]
    clock.advance(6)
    broker.tick()
    assert [d.redelivery_count for _, d in take(broker)] == [1]
    clock.advance(6)
    broker.tick()
    assert take(broker) == [] and broker.backlog(S) == 0
    assert broker.stats(StreamRef("dead")).published == 1


def test_exclusive_never_dead_letters_under_pulsars_count(broker: Broker) -> None:
    """Pulsar counts no redeliveries on Exclusive/Failover: the limit is never reached."""
    c = broker.subscribe(S, "sub", ConsumerOptions(nack_delay=0, max_redeliver_count=1))
    broker.publish(S, Envelope(b"x"))
    for _ in range(4):
        ((_, d),) = take(broker)
        assert d.redelivery_count == 0
        broker.nack(c, d.message_id)
    assert not broker.has_stream(StreamRef("s-sub-DLQ"))


def test_exclusive_dead_letters_when_every_hand_back_counts(clock: ManualClock) -> None:
    broker = make(clock, redelivery_count="every_hand_back")
    c = broker.subscribe(S, "sub", ConsumerOptions(nack_delay=0, max_redeliver_count=1))
    broker.publish(S, Envelope(b"x"))
    for count in (0, 1):
        ((_, d),) = take(broker)
        assert d.redelivery_count == count
        broker.nack(c, d.message_id)
    assert take(broker) == [] and broker.stats(StreamRef("s-sub-DLQ")).published == 1


def test_a_dead_letter_stream_that_cannot_be_created_leaves_the_message_redelivered(
    clock: ManualClock,
) -> None:
    broker = Broker(clock=clock, limits=Limits(max_streams=1))
    broker.create_stream(S)
    opts = ConsumerOptions(type="shared", nack_delay=0, max_redeliver_count=1)
    c = broker.subscribe(S, "sub", opts)
    broker.publish(S, Envelope(b"x"))
    for count in (0, 1, 2):
        ((_, d),) = take(broker)
        assert d.redelivery_count == count
        broker.nack(c, d.message_id)
    assert broker.backlog(S) == 1  # kept: nothing is lost


def test_dead_letter_options_are_checked(broker: Broker) -> None:
    with pytest.raises(ConfigError, match="needs max_redeliver_count"):
        ConsumerOptions(dead_letter_stream="d")
    with pytest.raises(ConfigError, match="max_redeliver_count"):
        ConsumerOptions(max_redeliver_count=0)
    with pytest.raises(ConfigError, match="itself"):
        broker.subscribe(S, "sub", ConsumerOptions(max_redeliver_count=1, dead_letter_stream="s"))


# ----------------------------------------------------------------------------- Key_Shared


def two_keys_apart(a: str, b: str) -> tuple[str, str]:
    """A key owned by consumer name ``a`` and one owned by ``b`` on a two-consumer ring."""
    ring = sorted([(p, a) for p in key_shared_points(a)] + [(p, b) for p in key_shared_points(b)])

    def owner(key: str) -> str:
        h = key_hash(key)
        return next((n for p, n in ring if p >= h), ring[0][1])

    keys = [f"key-{i}" for i in range(100)]
    return next(k for k in keys if owner(k) == a), next(k for k in keys if owner(k) == b)


def test_key_shared_keeps_each_key_on_one_consumer_in_order(broker: Broker) -> None:
    c1 = broker.subscribe(S, "sub", ConsumerOptions(type="key_shared", name="one"))
    c2 = broker.subscribe(S, "sub", ConsumerOptions(type="key_shared", name="two"))
    for i in range(200):
        broker.publish(S, Envelope(str(i).encode(), key=f"k{i % 20}"))
    owners: dict[str, set[int]] = {}
    order: dict[str, list[int]] = {}
    for consumer, d in take(broker):
        assert d.key is not None
        owners.setdefault(d.key, set()).add(consumer)
        order.setdefault(d.key, []).append(int(d.payload))
        broker.ack(consumer, d.message_id)
    assert all(len(who) == 1 for who in owners.values())
    assert {next(iter(who)) for who in owners.values()} == {c1, c2}  # keys are spread
    assert all(values == sorted(values) for values in order.values())


def test_messages_without_a_key_share_one_consumer(broker: Broker) -> None:
    for name in ("one", "two", "three"):
        broker.subscribe(S, "sub", ConsumerOptions(type="key_shared", name=name))
    for i in range(10):
        broker.publish(S, Envelope(bytes([i])))
    assert len({consumer for consumer, _ in take(broker)}) == 1


def test_a_key_moves_to_a_new_consumer_only_once_its_old_holder_acked(broker: Broker) -> None:
    mine, _ = two_keys_apart("two", "one")  # owned by "two" once it attaches
    c1 = broker.subscribe(S, "sub", ConsumerOptions(type="key_shared", name="one"))
    broker.publish(S, Envelope(b"1", key=mine))
    ((_, first),) = take(broker)
    c2 = broker.subscribe(S, "sub", ConsumerOptions(type="key_shared", name="two"))
    broker.publish(S, Envelope(b"2", key=mine))
    broker.publish(S, Envelope(b"3", key=mine))
    assert take(broker) == []  # "one" still holds 1: the key drains first
    broker.ack(c1, first.message_id)
    assert payloads(take(broker)) == [(c2, b"2", 0), (c2, b"3", 0)]


def test_a_leaving_consumers_keys_move_with_their_unacked_messages_first(broker: Broker) -> None:
    c1 = broker.subscribe(S, "sub", ConsumerOptions(type="key_shared", name="one"))
    c2 = broker.subscribe(S, "sub", ConsumerOptions(type="key_shared", name="two"))
    ones, _ = two_keys_apart("one", "two")
    broker.publish(S, Envelope(b"a", key=ones))
    broker.publish(S, Envelope(b"b", key=ones))
    assert [c for c, _ in take(broker)] == [c1, c1]
    broker.close_consumer(c1)
    broker.publish(S, Envelope(b"c", key=ones))
    assert payloads(take(broker)) == [(c2, b"a", 0), (c2, b"b", 0), (c2, b"c", 0)]


def test_a_busy_keys_later_messages_wait_but_other_keys_go_on(broker: Broker) -> None:
    ones, twos = two_keys_apart("one", "two")
    c1 = broker.subscribe(
        S, "sub", ConsumerOptions(type="key_shared", name="one", receiver_queue_size=1)
    )
    c2 = broker.subscribe(S, "sub", ConsumerOptions(type="key_shared", name="two"))
    for payload, key in ((b"1", ones), (b"2", ones), (b"3", twos), (b"4", ones)):
        broker.publish(S, Envelope(payload, key=key))
    got = take(broker)
    assert payloads(got) == [(c1, b"1", 0), (c2, b"3", 0)]
    broker.ack(c1, got[0][1].message_id)
    ((_, second),) = take(broker)
    assert second.payload == b"2"
    broker.ack(c1, second.message_id)
    assert payloads(take(broker)) == [(c1, b"4", 0)]


def test_key_shared_sets_aside_at_most_the_lookahead(clock: ManualClock) -> None:
    broker = Broker(clock=clock, limits=Limits(key_shared_lookahead=3))
    broker.create_stream(S)
    ones, twos = two_keys_apart("one", "two")
    opts = ConsumerOptions(type="key_shared", name="one", receiver_queue_size=1)
    c1 = broker.subscribe(S, "sub", opts)
    c2 = broker.subscribe(S, "sub", ConsumerOptions(type="key_shared", name="two"))
    for i in range(5):
        broker.publish(S, Envelope(bytes([i]), key=ones))
    broker.publish(S, Envelope(b"two", key=twos))
    ((_, held),) = take(broker)  # one for "one"; three set aside; reading stops there
    broker.ack(c1, held.message_id)
    ((_, held),) = take(broker)  # the next for "one"; the fifth is set aside in its place
    assert held.payload == b"\1"
    broker.ack(c1, held.message_id)  # now fewer are set aside: "two" is read at last
    assert payloads(take(broker)) == [(c1, b"\2", 0), (c2, b"two", 0)]


# ------------------------------------------------------------------------------ pull mode


def test_a_pull_mode_consumer_gets_only_what_it_asked_for(broker: Broker) -> None:
    c = broker.subscribe(S, "sub", ConsumerOptions(pull_mode=True))
    for i in range(10):
        broker.publish(S, Envelope(bytes([i])))
    assert broker.events() == [] and broker.permits(c) == 0
    broker.grant(c, 3)
    assert [d.payload for _, d in (e for e in pull_events(broker))] == [b"\0", b"\1", b"\2"]
    assert broker.permits(c) == 0
    broker.grant(c, 5000)  # beyond the receiver queue: a pull consumer's permits add up
    assert broker.permits(c) == 5000 - 7


def pull_events(broker: Broker) -> list[tuple[int, Delivery]]:
    """Deliveries without giving permits back (a pull-mode front end grants none itself)."""
    return [(e.consumer, e.delivery) for e in broker.events() if isinstance(e, Deliver)]


# ------------------------------------------------------------------------------- failover


def test_failover_picks_by_priority_then_by_pulsars_hash_of_names(
    broker: Broker, clock: ManualClock
) -> None:
    low = broker.subscribe(S, "sub", ConsumerOptions(type="failover", name="a", priority_level=1))
    names = ["b", "c", "d"]
    ids = [
        broker.subscribe(S, "sub", ConsumerOptions(type="failover", name=n, priority_level=0))
        for n in names
    ]
    clock.advance(2)
    broker.tick()
    expected = ids[failover_active("s", [(0, n) for n in names])]
    assert broker.is_active(expected) and not broker.is_active(low)
    assert sum(broker.is_active(i) for i in ids) == 1


def test_a_failover_successor_waits_the_delay_and_gets_what_the_old_one_held(
    broker: Broker, clock: ManualClock
) -> None:
    a = broker.subscribe(S, "sub", ConsumerOptions(type="failover", name="a"))
    broker.publish(S, Envelope(b"held"))
    assert [c for c, _ in take(broker)] == [a]
    b = broker.subscribe(S, "sub", ConsumerOptions(type="failover", name="b"))
    active, standby = (a, b) if broker.is_active(a) else (b, a)
    broker.close_consumer(active)
    broker.publish(S, Envelope(b"next"))
    clock.advance(0.9)
    broker.tick()
    assert take(broker) == []  # activeConsumerFailoverDelayTimeMillis: 1 s by default
    clock.advance(0.2)
    broker.tick()
    got = payloads(take(broker))
    assert [(c, p) for c, p, _ in got] == [(standby, b"held"), (standby, b"next")]
    assert [n for *_, n in got] == [0, 0]  # Pulsar counts nothing on Failover


def test_a_new_active_consumer_takes_over_what_the_old_active_held(clock: ManualClock) -> None:
    broker = make(clock, failover_delay=0)
    low = broker.subscribe(S, "sub", ConsumerOptions(type="failover", name="a", priority_level=5))
    broker.publish(S, Envelope(b"x"))
    ((_, held),) = take(broker)
    high = broker.subscribe(S, "sub", ConsumerOptions(type="failover", name="b"))
    assert payloads(take(broker)) == [(high, b"x", 0)]
    assert not broker.is_outstanding(low, held.message_id)
    broker.ack(low, held.message_id)  # the old copy still acks the message (Pulsar does)
    assert broker.backlog(S) == 0


# ------------------------------------------------------------------------ redelivery count


def test_pulsars_count_ignores_a_consumer_going_away(broker: Broker) -> None:
    c1 = broker.subscribe(S, "sub", ConsumerOptions(type="shared", nack_delay=0))
    broker.publish(S, Envelope(b"x"))
    ((_, d),) = take(broker)
    broker.nack(c1, d.message_id)
    ((_, d),) = take(broker)
    c2 = broker.subscribe(S, "sub", ConsumerOptions(type="shared"))
    broker.close_consumer(c1)
    assert payloads(take(broker)) == [(c2, b"x", 1)]


def test_every_hand_back_counts_a_consumer_going_away(clock: ManualClock) -> None:
    broker = make(clock, redelivery_count="every_hand_back")
    c1 = broker.subscribe(S, "sub", ConsumerOptions())
    broker.publish(S, Envelope(b"x"))
    take(broker)
    broker.close_consumer(c1)
    c2 = broker.subscribe(S, "sub", ConsumerOptions())
    assert payloads(take(broker)) == [(c2, b"x", 1)]


def test_rules_are_checked() -> None:
    with pytest.raises(ConfigError, match="redelivery_count rule"):
        Rules(redelivery_count="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="failover_delay"):
        Rules(failover_delay=float("inf"))


# ------------------------------------------------------------------------------- readers


def test_a_publish_trims_the_log_once_whatever_the_readers(clock: ManualClock) -> None:
    """Serving N readers used to trim after each one: O(N) passes over N subscriptions."""
    calls = 0

    class Counting(Broker):
        def _trim(self, stream: object, *, force: bool = False) -> None:
            nonlocal calls
            calls += 1
            super()._trim(stream, force=force)  # type: ignore[arg-type]

    broker = Counting(clock=clock)
    broker.create_stream(S)
    broker.subscribe(S, "durable", ConsumerOptions())
    for _ in range(50):
        broker.open_reader(S, ReaderOptions())
    calls = 0
    broker.publish(S, Envelope(b"x"))
    assert calls == 1
