"""The sans-I/O broker: Pulsar subscription semantics with no sockets, threads or sleeps.

How it works. Each stream keeps a log of stored messages, numbered by ``seq``. Each
subscription keeps a cursor over that log:

* ``read_pos``: the next sequence number never dispatched;
* ``mark_delete``: every ``seq`` below it is acknowledged; ``acked`` holds acks above it;
* ``outstanding``: seq -> consumer currently holding it (delivered, not yet acked or nacked);
* ``ready``: unacked messages handed back (nack, ack timeout, consumer gone), sent before new ones;
* ``delayed``: nacked messages waiting for their redelivery time.

Every state change ends in ``_dispatch``, which hands messages to consumers with a permit and
free room in their receiver queue (unacked messages in flight), lowest ``seq`` first. Exclusive
and Failover dispatch to the active consumer only (Failover picks it as Pulsar does, by
priority level and a hash of names: ``streamfw.sticky``; a new active consumer starts after
``Rules.failover_delay``, getting what the old one held); Shared goes round robin; Key_Shared
sends each key to the consumer owning its hash, and holds a key back from a new owner while
another consumer still holds unacked messages of it (Pulsar 4.0's draining hashes). Time comes
from the injected ``clock``; callers run ``tick()`` at ``next_deadline()`` for nack delays, ack
timeouts and message TTL. Front ends read what happened from ``events()``: ``Deliver`` to a
consumer, ``ActiveChanged`` for failover standbys, ``ConsumerClosed``/``ProducerClosed`` when a
forced delete takes their stream away.

Flow control is permit-based, as in Pulsar: a consumer starts with ``receiver_queue_size``
permits, every delivery (first or redelivered) uses one, and the front end gives them back
with ``grant()`` once it has handed the message over (the emulator when the frame is written to
the socket, loopback when the application receives it). A consumer that stops reading therefore
stops getting messages, whatever its ack timeout hands back. A reader (a non-durable cursor)
acks nothing, as Pulsar's reader, whose client acks for the application: its cursor moves as
messages are dispatched, so only its permits bound it, on every front end alike.

Limits (``Limits``): a stream keeps at most ``backlog_quota_messages`` / ``backlog_quota_bytes``
of messages. A publish beyond that is refused with ``BacklogQuotaExceeded`` while a durable
subscription still needs the oldest message (Pulsar's ``producer_exception`` policy); with no
durable subscription nobody is owed the oldest message, so it is dropped instead (Pulsar keeps
nothing that is in no backlog unless retention is configured). ``max_streams`` and
``max_subscriptions`` cap the rest.

Message ids: each stream gets a ledger number from a per-broker-instance counter that starts at
``first_ledger``; front ends pass ``first_ledger_now()`` (the start time in milliseconds,
shifted left 16 bits, plus a random 15-bit number), so ids never repeat across restarts of an
emulator, and a later run's ledgers are larger, as Pulsar's ledger ids only grow. The broker
reads no clock of its own for this. A reader asked to start after an id of another
ledger of its stream is positioned as Pulsar positions it: after every message of an older
ledger (the earliest retained message), before none of a newer one (the end).

Redelivery count (``Rules.redelivery_count``, docs/protocol.md §15.1): by default Pulsar's
rule -- on Shared and Key_Shared a message's count grows by one at each nack or ack timeout,
not when its consumer goes away; on Exclusive and Failover it stays 0. The stricter
``every_hand_back`` rule counts every hand-back (nack, ack timeout, the consumer going away)
on every subscription type.

Dead letters (docs/protocol.md §15.2): a consumer with ``max_redeliver_count`` that nacks (or
times out) a message delivered with a count at that limit has it published to its
``dead_letter_stream`` (created if missing), with its key and properties plus ``REAL_TOPIC``
and ``ORIGIN_MESSAGE_ID``, and acknowledged -- in one broker call, so exactly once. Pull-mode
consumers start with no permits: they get what the front end ``grant``s on their request.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import attrs

from streamfw.api import (
    ConsumerOptions,
    ConsumerStats,
    ReaderOptions,
    StreamRef,
    StreamStats,
    SubscriptionInfo,
    SubscriptionStats,
    SubscriptionType,
    check_name,
)
from streamfw.errors import (
    AlreadyExists,
    BacklogQuotaExceeded,
    ConfigError,
    InUse,
    LimitExceeded,
    LocalProtocolError,
    StreamNotFound,
    SubscriptionBusy,
    SubscriptionNotFound,
)
from streamfw.message import Delivery, Envelope, MessageId
from streamfw.options import JAVA_INT_MAX, at_least_one
from streamfw.sticky import Ring, failover_active, key_hash, key_shared_points

MAX_SECONDS = JAVA_INT_MAX  # TTL and expiry bounds: Pulsar keeps them in a Java int


@attrs.frozen
class Limits:
    """What one broker holds at most; every value is a documented default (docs/emulator.md).

    Pulsar leaves these unlimited by default (``backlogQuotaDefaultLimitBytes=-1``,
    ``maxTopicsPerNamespace=0``, ``maxSubscriptionsPerTopic=0`` in conf/broker.conf), but it
    stores messages on disk; a broker that keeps everything in memory needs finite ones.
    ``key_shared_lookahead`` is Pulsar's own default
    (``keySharedLookAheadMsgInReplayThresholdPerSubscription``): on a Key_Shared
    subscription, how many messages may be set aside for busy or draining keys before the
    broker stops reading further ones.
    """

    max_streams: int = attrs.field(default=10_000, validator=at_least_one)
    max_subscriptions: int = attrs.field(default=1_000, validator=at_least_one)  # per stream
    backlog_quota_messages: int = attrs.field(default=100_000, validator=at_least_one)
    backlog_quota_bytes: int = attrs.field(default=100 * 2**20, validator=at_least_one)
    key_shared_lookahead: int = attrs.field(default=20_000, validator=at_least_one)


RedeliveryRule = Literal["pulsar", "every_hand_back"]
REDELIVERY_RULES: tuple[RedeliveryRule, ...] = ("pulsar", "every_hand_back")


def _redelivery_rule(_: object, __: object, value: object) -> None:
    if value not in REDELIVERY_RULES:
        raise ConfigError(
            f"redelivery_count rule {value!r:.80} is unknown (known: {', '.join(REDELIVERY_RULES)})"
        )


def _delay(_: object, __: object, value: object) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < math.inf
    if not ok:
        raise ConfigError(f"failover_delay must be a finite number of seconds >= 0, got {value!r}")


@attrs.frozen
class Rules:
    """Where the broker lets its owner choose a behaviour (docs/protocol.md §15).

    Attributes:
        redelivery_count: ``pulsar`` (the default: counted on Shared and Key_Shared, at nacks
            and ack timeouts) or ``every_hand_back`` (counted at every hand-back, on every
            subscription type, a consumer going away included).
        failover_delay: seconds a new active Failover consumer waits before it gets messages
            (Pulsar's ``activeConsumerFailoverDelayTimeMillis``, default 1000 ms).
    """

    redelivery_count: RedeliveryRule = attrs.field(default="pulsar", validator=_redelivery_rule)
    failover_delay: float = attrs.field(default=1.0, validator=_delay)


def check_seconds(what: str, value: object) -> int:
    """``value`` if it is a whole number of seconds from 0 to MAX_SECONDS, else ConfigError."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SECONDS:
        raise ConfigError(f"{what} must be a whole number of seconds from 0 to {MAX_SECONDS}")
    return value


# ---------------------------------------------------------------------------------- events


class Deliver(NamedTuple):
    """``consumer`` is sent ``delivery``. A named tuple, not an attrs class like the other
    events: one is made per message delivered, and a tuple is built in a third of the time."""

    consumer: int
    delivery: Delivery


@attrs.frozen
class ActiveChanged:
    """A failover consumer became the active one (or a standby)."""

    consumer: int
    active: bool


@attrs.frozen
class ConsumerClosed:
    consumer: int
    reason: str


@attrs.frozen
class ProducerClosed:
    producer: int
    reason: str


Event = Deliver | ActiveChanged | ConsumerClosed | ProducerClosed
_deliver = functools.partial(tuple.__new__, Deliver)  # Deliver(*pair) without a Python frame

# ----------------------------------------------------------------------------------- state


_from_timestamp = dt.datetime.fromtimestamp  # looked up once: publish runs per message
_UTC = dt.timezone.utc


@attrs.define(eq=False)
class _Timer:
    """One pending deadline: an ack timeout (``consumer`` set) or a nack delay (``sub`` set).

    Cancelling drops the references, so a timer left in the heap keeps nothing alive.
    """

    due: float
    seq: int  # SWITCH: a failover switch, not a message
    consumer: _Consumer | None = None
    stream: _Stream | None = None
    sub: _Subscription | None = None

    @property
    def live(self) -> bool:
        return self.consumer is not None or self.sub is not None

    def __lt__(self, other: _Timer) -> bool:  # heapq orders by due time only
        return self.due < other.due


@attrs.define(eq=False)
class _Consumer:
    id: int
    stream: _Stream
    sub: _Subscription
    name: str
    queue_size: int
    ack_timeout: float | None
    nack_delay: float
    permits: int = 0  # deliveries it may still get before the front end grants more
    in_flight: dict[int, _Timer | None] = attrs.Factory(dict)  # seq -> its ack timeout
    priority: int = 0
    pull: bool = False  # pull mode: permits come only from the application's requests
    max_redeliver: int | None = None
    dead_letter: str | None = None


@attrs.define(eq=False)
class _Subscription:
    name: str
    type: SubscriptionType
    durable: bool
    read_pos: int
    mark_delete: int
    consumers: list[_Consumer] = attrs.Factory(list)
    acked: set[int] = attrs.Factory(set)
    outstanding: dict[int, _Consumer] = attrs.Factory(dict)
    ready: list[int] = attrs.Factory(list)  # heap; ``ready_set`` says which entries are live
    ready_set: set[int] = attrs.Factory(set)
    delayed: dict[int, _Timer] = attrs.Factory(dict)
    redeliveries: dict[int, int] = attrs.Factory(dict)
    rr: int = 0
    active: _Consumer | None = None  # Exclusive / Failover: the one that gets messages
    switch: _Timer | None = None  # Failover: the new active consumer waits for this
    ring: Ring[_Consumer] = attrs.Factory(Ring)  # Key_Shared: who owns which key hashes
    holders: dict[int, list[Any]] = attrs.Factory(dict)  # hash -> [consumer, unacked count]
    held_hash: dict[int, int] = attrs.Factory(dict)  # Key_Shared: outstanding seq -> hash

    def is_acked(self, seq: int) -> bool:
        return seq < self.mark_delete or seq in self.acked

    def backlog(self, end: int) -> int:
        return end - self.mark_delete - len(self.acked)


@attrs.define(eq=False)
class _Stream:
    ref: StreamRef
    ledger: int
    created: float
    base: int = 0  # lowest seq still in the log
    # log[i] holds seq base + i, as what every first delivery of it hands out: one immutable
    # value, built once; nothing else is kept per message (memory per backlogged message).
    log: list[Delivery] = attrs.Factory(list)
    size: int = 0  # payload bytes in the log
    subs: dict[str, _Subscription] = attrs.Factory(dict)
    producers: set[int] = attrs.Factory(set)
    published: int = 0
    end: int = 0  # the next seq to store: base + len(log), kept as a field (hot path)


# ---------------------------------------------------------------------------------- broker

TRIM_CHUNK = 256  # acked messages kept before the log drops them (see _trim)
COMPACT_AT = 1024  # cancelled timers tolerated in the heap before it is rebuilt
SWITCH = -1  # the seq of a failover switch timer
MAX_PERMITS = JAVA_INT_MAX  # a pull-mode consumer's permits add up to this (a Java int in Pulsar)
REAL_TOPIC = "REAL_TOPIC"  # dead-letter properties, as Pulsar's client sets them
ORIGIN_MESSAGE_ID = "ORIGIN_MESSAGE_ID"


class Broker:
    """All streams of one emulated tenant. Not thread-safe: its owner serialises calls.

    Args:
        clock: wall-clock seconds (tests inject a manual clock).
        limits: caps on streams, subscriptions and backlog (``Limits()`` by default).
        first_ledger: the ledger number of the first stream created. A front end passes
            ``streamfw.api.first_ledger_now()`` (the wall clock, not ``clock``: a test's manual
            clock would repeat) so that ids of two broker instances (an emulator and its
            restart) never alias; the broker itself reads no clock. Default 0.
        rules: the behaviours a user may choose (``Rules()``, Pulsar's, by default).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        limits: Limits | None = None,
        first_ledger: int = 0,
        rules: Rules | None = None,
    ) -> None:
        self._clock = clock
        self.limits = limits or Limits()
        self.rules = rules or Rules()
        self._streams: dict[StreamRef, _Stream] = {}
        self._consumers: dict[int, _Consumer] = {}
        self._producers: dict[int, _Stream] = {}
        self._ids = itertools.count(1)
        if not isinstance(first_ledger, int) or first_ledger < 0:
            raise ConfigError(f"first_ledger must be a whole number >= 0, got {first_ledger!r}")
        self._ledgers = itertools.count(first_ledger)
        self._timers: list[_Timer] = []  # a heap by due time
        self._cancelled = 0  # cancelled timers still in the heap
        self._outbox: list[Event] = []
        self._ttl = 0
        # Bumped whenever a timer is added or the TTL set: a front end that keeps
        # next_deadline() between calls (the loopback host) need look again only then.
        self.schedule = 0
        self.freed = 0  # payload bytes dropped from logs so far (front ends may trim memory)
        self._last_ms: int | None = None  # the millisecond _publish last made a time for
        self._last_time = _from_timestamp(0, _UTC)

    @property
    def message_ttl(self) -> int:
        """Seconds after which unacked messages expire; 0 keeps them (until the quota)."""
        return self._ttl

    @message_ttl.setter
    def message_ttl(self, seconds: int) -> None:
        self._ttl = check_seconds("message TTL", seconds)
        self.schedule += 1

    # ------------------------------------------------------------------ streams (admin)

    def create_stream(self, ref: StreamRef) -> None:
        if ref in self._streams:
            raise AlreadyExists(f"stream {ref} already exists")
        if len(self._streams) >= self.limits.max_streams:
            raise LimitExceeded(
                f"cannot create stream {ref}: the limit of {self.limits.max_streams} streams"
                " is reached (Limits.max_streams)"
            )
        self._streams[ref] = _Stream(ref, next(self._ledgers), self._clock())

    def has_stream(self, ref: StreamRef) -> bool:
        return ref in self._streams

    def list_streams(self, *, local: bool | None = None) -> list[StreamRef]:
        return sorted(
            (r for r in self._streams if local is None or r.local == local),
            key=lambda r: (r.local, r.name),
        )

    def delete_stream(self, ref: StreamRef, *, force: bool = False) -> None:
        stream = self._stream(ref)
        attached = [c for s in stream.subs.values() for c in s.consumers]
        if (attached or stream.producers) and not force:
            raise InUse(
                f"stream {ref} has {len(attached)} consumer(s) and {len(stream.producers)}"
                " producer(s) attached; delete with force=True to close them"
            )
        for consumer in attached:
            del self._consumers[consumer.id]
            self._cancel_all(consumer.in_flight)
            self._outbox.append(ConsumerClosed(consumer.id, f"stream {ref} was deleted"))
        for pid in sorted(stream.producers):
            del self._producers[pid]
            self._outbox.append(ProducerClosed(pid, f"stream {ref} was deleted"))
        for sub in stream.subs.values():
            self._cancel_all(sub.delayed)
            self._cancel(sub.switch)
        self.freed += stream.size
        del self._streams[ref]

    def subscriptions(self, ref: StreamRef) -> list[SubscriptionInfo]:
        stream = self._stream(ref)
        return [
            SubscriptionInfo(s.name, s.type, s.backlog(stream.end), len(s.consumers))
            for s in sorted(stream.subs.values(), key=lambda s: s.name)
            if s.durable
        ]

    def delete_subscription(self, ref: StreamRef, name: str) -> None:
        stream = self._stream(ref)
        sub = stream.subs.get(name)
        if sub is None or not sub.durable:
            raise SubscriptionNotFound(f"stream {ref} has no subscription {name!r}")
        if sub.consumers:
            raise InUse(f"subscription {name!r} on {ref} has active connected consumers")
        self._remove_sub(stream, sub)

    def backlog(self, ref: StreamRef) -> int:
        """Messages not yet acked, summed over the stream's durable subscriptions."""
        stream = self._stream(ref)
        return sum(s.backlog(stream.end) for s in stream.subs.values() if s.durable)

    def clear_backlog(self, ref: StreamRef, subscription: str | None = None) -> None:
        """Skip a subscription (or all of them) to the end of the stream."""
        stream = self._stream(ref)
        if subscription is not None and subscription not in stream.subs:
            raise SubscriptionNotFound(f"stream {ref} has no subscription {subscription!r}")
        for sub in list(stream.subs.values()):
            if subscription is None or sub.name == subscription:
                self._ack_below(stream, sub, stream.end)

    def expire(self, ref: StreamRef, seconds: int) -> None:
        """Acknowledge, on every subscription, the messages older than ``seconds``."""
        stream = self._stream(ref)
        cutoff = self._clock() - check_seconds("expiry", seconds)
        first_young = stream.base
        for stored in stream.log:
            if stored.publish_time.timestamp() > cutoff:
                break
            first_young += 1
        for sub in list(stream.subs.values()):
            self._ack_below(stream, sub, first_young)
        if not stream.subs:  # nobody would ever ack them: drop them
            self._drop_below(stream, first_young)

    def stats(self, ref: StreamRef) -> StreamStats:
        """The stream's statistics (durable subscriptions only)."""
        stream = self._stream(ref)
        return StreamStats(
            published=stream.published,
            storage_size=stream.size,
            producers=tuple(sorted(stream.producers)),
            subscriptions={
                s.name: SubscriptionStats(
                    type=s.type,
                    backlog=s.backlog(stream.end),
                    unacked=len(s.outstanding),
                    consumers=tuple(ConsumerStats(c.name, len(c.in_flight)) for c in s.consumers),
                )
                for s in stream.subs.values()
                if s.durable
            },
        )

    # --------------------------------------------------------------------------- publish

    def open_producer(self, ref: StreamRef) -> int:
        stream = self._stream(ref)
        pid = next(self._ids)
        stream.producers.add(pid)
        self._producers[pid] = stream
        return pid

    def close_producer(self, producer: int) -> None:
        stream = self._producers.pop(producer, None)
        if stream is not None:
            stream.producers.discard(producer)

    def publish(self, ref: StreamRef, envelope: Envelope) -> MessageId:
        """Store a message; ``BacklogQuotaExceeded`` if its stream has no room for it."""
        return self._publish(self._stream(ref), envelope)

    def publish_from(self, producer: int, envelope: Envelope) -> MessageId:
        """``publish`` to the stream ``producer`` was opened on (found by its number, not
        hashed by name: a front end that knows its producer calls this once per send).

        Raises:
            LocalProtocolError: the producer is closed (or its stream was deleted).
        """
        stream = self._producers.get(producer)
        if stream is None:
            raise LocalProtocolError(f"producer {producer} is closed")
        return self._publish(stream, envelope)

    def _publish(self, stream: _Stream, envelope: Envelope) -> MessageId:
        payload = envelope.payload
        size = len(payload)
        limits = self.limits
        if len(stream.log) >= limits.backlog_quota_messages or (
            stream.size + size > limits.backlog_quota_bytes
        ):
            self._make_room(stream, size)
        # The publish time, to the millisecond: Pulsar's publish time is milliseconds since
        # the epoch and its wire carries no more (docs/protocol.md §10), so no front end of
        # this core keeps more either, and a message reads the same in-process as over a
        # socket. Messages published within one millisecond share one value.
        ms = math.floor(self._clock() * 1000)  # floor: a clock before 1970 too
        if ms != self._last_ms:
            self._last_ms = ms
            self._last_time = _from_timestamp(ms / 1000, _UTC)
        seq = stream.end
        mid = MessageId.trusted(stream.ref.name, stream.ledger, seq)
        # an empty envelope's properties are NO_PROPERTIES, shared by every such message
        stream.log.append(
            Delivery.trusted(mid, payload, envelope.properties, envelope.key, self._last_time)
        )
        stream.size += size
        stream.end = seq + 1
        stream.published += 1
        moved = False
        for sub in stream.subs.values():  # a dispatch never adds or removes a subscription
            moved = self._dispatch(stream, sub) or moved
        if moved:  # once for all readers served, not once per reader
            self._trim(stream)
        return mid

    def _make_room(self, stream: _Stream, size: int) -> None:
        """Free room for one more message of ``size`` bytes, or raise BacklogQuotaExceeded.

        Acked messages go first. Beyond those, the oldest message is dropped only if no
        durable subscription still needs it (Pulsar retains nothing outside a backlog);
        otherwise the publish is refused, Pulsar's ``producer_exception`` policy.
        """
        limits = self.limits
        if size > limits.backlog_quota_bytes:
            raise self._quota_error(stream, f"a message of {size} bytes is larger than it")
        self._trim(stream, force=True)
        log = stream.log
        count = max(0, len(log) + 1 - limits.backlog_quota_messages)  # oldest ones that must go
        freed = sum(len(s.payload) for s in log[:count])
        while count < len(log) and stream.size - freed + size > limits.backlog_quota_bytes:
            freed += len(log[count].payload)
            count += 1
        new_base = stream.base + count
        needed = min((s.mark_delete for s in stream.subs.values() if s.durable), default=None)
        if needed is not None and needed < new_base:
            raise self._quota_error(stream, "a subscription has not acknowledged the oldest")
        for sub in list(stream.subs.values()):  # readers lose what they have not read
            self._ack_below(stream, sub, new_base)
        self._drop_below(stream, new_base)

    def _quota_error(self, stream: _Stream, why: str) -> BacklogQuotaExceeded:
        limits = self.limits
        return BacklogQuotaExceeded(
            f"backlog quota exceeded on stream {stream.ref} ({why}): it holds"
            f" {len(stream.log)} message(s), {stream.size} bytes; the quota is"
            f" {limits.backlog_quota_messages} messages / {limits.backlog_quota_bytes} bytes"
            " (ProducerBlockedQuotaExceededException, policy producer_exception)"
        )

    # ------------------------------------------------------------------------- consumers

    def subscribe(self, ref: StreamRef, subscription: str, options: ConsumerOptions) -> int:
        """Attach a consumer; a refused attach (SubscriptionBusy) changes nothing."""
        check_name("subscription", subscription)
        stream = self._stream(ref)
        dead_letter = None
        if options.max_redeliver_count is not None:
            dead_letter = options.dead_letter_stream or f"{ref.name}-{subscription}-DLQ"
            check_name("dead-letter stream", dead_letter)
            if dead_letter == ref.name:
                raise ConfigError(f"the dead-letter stream of {ref} cannot be {ref} itself")
        sub = stream.subs.get(subscription)
        if sub is not None and sub.consumers:
            if sub.type != options.type:
                raise SubscriptionBusy(
                    f"cannot attach a {options.type} consumer to subscription {subscription!r}"
                    f" on {ref}: it is {sub.type} with consumers attached"
                    " (Subscription is of different type)",
                    stream=ref.name,
                    subscription=subscription,
                )
            if sub.type == "exclusive":
                raise SubscriptionBusy(
                    f"subscription {subscription!r} on {ref} is exclusive and already has a"
                    " consumer (Exclusive consumer is already connected)",
                    stream=ref.name,
                    subscription=subscription,
                )
        if sub is None:
            durable = sum(1 for s in stream.subs.values() if s.durable)
            if durable >= self.limits.max_subscriptions:
                raise LimitExceeded(
                    f"cannot create subscription {subscription!r} on {ref}: the limit of"
                    f" {self.limits.max_subscriptions} subscriptions per stream is reached"
                    " (Limits.max_subscriptions)"
                )
            start = stream.base if options.initial_position == "earliest" else stream.end
            sub = stream.subs[subscription] = _Subscription(
                subscription, options.type, True, start, start
            )
        sub.type = options.type
        consumer = self._new_consumer(
            stream, sub, options.name, options.receiver_queue_size, options.ack_timeout
        )
        consumer.nack_delay = options.nack_delay
        consumer.priority = options.priority_level
        consumer.pull = options.pull_mode
        consumer.permits = 0 if options.pull_mode else consumer.queue_size
        consumer.max_redeliver = options.max_redeliver_count
        consumer.dead_letter = dead_letter
        return self._attach(consumer)

    def open_reader(self, ref: StreamRef, options: ReaderOptions) -> int:
        """A non-durable, exclusive cursor that starts where ``options.start`` says."""
        stream = self._stream(ref)
        if options.start == "earliest":
            start = stream.base
        elif options.start == "latest":
            start = stream.end
        else:
            mid = options.start
            if mid.stream != ref.name:
                raise LocalProtocolError(f"{mid} is not a message of stream {ref}")
            if mid.ledger < stream.ledger:  # from before a restart or a re-creation
                start = stream.base
            elif mid.ledger > stream.ledger:
                start = stream.end
            else:
                start = min(max(mid.entry + 1, stream.base), stream.end)
        name = f"reader-{next(self._ids)}"
        sub = stream.subs[name] = _Subscription(name, "exclusive", False, start, start)
        return self._attach(
            self._new_consumer(stream, sub, options.name, options.receiver_queue_size, None)
        )

    def _new_consumer(
        self,
        stream: _Stream,
        sub: _Subscription,
        name: str | None,
        queue: int,
        ack_timeout: float | None,
    ) -> _Consumer:
        cid = next(self._ids)
        return _Consumer(
            cid, stream, sub, name or f"consumer-{cid}", queue, ack_timeout, 0.0, queue
        )

    def _attach(self, consumer: _Consumer) -> int:
        stream, sub = consumer.stream, consumer.sub
        sub.consumers.append(consumer)
        self._consumers[consumer.id] = consumer
        if sub.type == "key_shared":
            sub.ring.add(consumer, key_shared_points(consumer.name))
        elif sub.type != "shared":
            self._pick_active(stream, sub)
            if sub.type == "failover" and sub.active is not consumer:
                self._outbox.append(ActiveChanged(consumer.id, False))
        if self._dispatch(stream, sub):
            self._trim(stream)
        return consumer.id

    def _pick_active(self, stream: _Stream, sub: _Subscription) -> None:
        """Choose the Exclusive/Failover active consumer; a Failover successor waits.

        A consumer taking over from one still attached gets what that one held (Pulsar
        rewinds the cursor for the new active consumer), after ``Rules.failover_delay``
        like any successor; the first consumer of a subscription starts at once.
        """
        consumers = sub.consumers
        if not consumers:
            sub.active = None
            self._cancel(sub.switch)
            sub.switch = None
            return
        if sub.type == "failover" and len(consumers) > 1:
            chosen = consumers[
                failover_active(stream.ref.name, [(c.priority, c.name) for c in consumers])
            ]
        else:
            chosen = consumers[0]
        old = sub.active
        if chosen is old:
            return
        sub.active = chosen
        if sub.type != "failover":
            return
        if old is not None and old in consumers:
            self._outbox.append(ActiveChanged(old.id, False))
        self._outbox.append(ActiveChanged(chosen.id, True))
        delay = self.rules.failover_delay
        self._cancel(sub.switch)
        sub.switch = None
        if old is None or delay <= 0:
            self._take_back_from_standbys(sub)
            return
        sub.switch = _Timer(self._clock() + delay, SWITCH, stream=stream, sub=sub)
        self._push(sub.switch)

    def _take_back_from_standbys(self, sub: _Subscription) -> None:
        """What consumers other than the active one hold goes back, first in line."""
        for c in sub.consumers:
            if c is sub.active or not c.in_flight:
                continue
            for seq in sorted(c.in_flight):
                del sub.outstanding[seq]
                self._hand_back(sub, seq, failure=False)
            self._cancel_all(c.in_flight)

    def grant(self, consumer: int, permits: int = 1) -> bool:
        """Give back ``permits`` deliveries: the front end handed that many messages over.

        A consumer never holds more than its receiver queue size; a closed one is ignored
        (its last frames may be written after it went). Returns whether messages were
        dispatched (so ``events()`` has news); most grants dispatch nothing.
        """
        c = self._consumers.get(consumer)
        if c is None:
            return False
        was = c.permits
        cap = MAX_PERMITS if c.pull else c.queue_size
        c.permits = was + permits if was + permits < cap else cap
        if was:  # it could take messages already: nothing waits for this permit
            return False
        sub = c.sub
        if sub.ready_set or sub.read_pos < c.stream.end:
            if self._dispatch(c.stream, sub):
                self._trim(c.stream)
            return True
        return False

    def permits(self, consumer: int) -> int:
        """Deliveries ``consumer`` may still get before the front end grants more."""
        return self._live(consumer).permits

    def close_consumer(self, consumer: int) -> None:
        """Detach; what it held unacked goes back to the subscription, first in line."""
        c = self._consumers.pop(consumer, None)
        if c is None:
            return
        stream, sub = c.stream, c.sub
        sub.consumers.remove(c)
        for seq in sorted(c.in_flight):
            del sub.outstanding[seq]
            if sub.held_hash:
                self._release(sub, seq)
            self._hand_back(sub, seq, failure=False)
        self._cancel_all(c.in_flight)
        if not sub.durable:
            self._remove_sub(stream, sub)
            return
        if sub.type == "key_shared":
            sub.ring.remove(c)
        elif sub.type != "shared":
            self._pick_active(stream, sub)  # the one leaving may have been active
        self._dispatch(stream, sub)

    def unsubscribe(self, consumer: int) -> None:
        """Delete the consumer's subscription; refused while other consumers are attached."""
        c = self._live(consumer)
        if len(c.sub.consumers) > 1:
            raise InUse(f"subscription {c.sub.name!r} has other consumers attached")
        self.close_consumer(consumer)
        if c.stream.subs.get(c.sub.name) is c.sub:
            self._remove_sub(c.stream, c.sub)

    def is_outstanding(self, consumer: int, message_id: MessageId) -> bool:
        """Whether ``message_id`` is still held by ``consumer`` (not acked, not handed back)."""
        c = self._consumers.get(consumer)
        if c is None or message_id.ledger != c.stream.ledger:
            return False
        return c.sub.outstanding.get(message_id.entry) is c

    def is_active(self, consumer: int) -> bool:
        c = self._live(consumer)
        return c.sub.active is c or c.sub.type in ("shared", "key_shared")

    def ack(self, consumer: int, message_id: MessageId) -> None:
        c = self._live(consumer)
        sub, stream, seq = c.sub, c.stream, message_id.entry
        # _seq_of's checks, the common case inline (once per ack): a message of this stream
        # already read by the subscription.
        if not (
            seq < sub.read_pos
            and message_id.ledger == stream.ledger
            and message_id.stream == stream.ref.name
        ):
            seq = self._seq_of(c, message_id)
        if seq < sub.mark_delete or seq in sub.acked:  # sub.is_acked, inlined: once per ack
            return  # acks are idempotent
        self._ack_seq(c.stream, sub, seq)
        if sub.ready_set or sub.read_pos < c.stream.end:  # else there is nothing to send
            self._dispatch(c.stream, sub)

    def _ack_seq(self, stream: _Stream, sub: _Subscription, seq: int) -> None:
        holder = sub.outstanding.pop(seq, None)
        if holder is not None:
            timer = holder.in_flight.pop(seq, None)
            if timer is not None:
                self._cancel(timer)
            if sub.held_hash:
                self._release(sub, seq)
        sub.ready_set.discard(seq)
        if sub.delayed:
            self._cancel(sub.delayed.pop(seq, None))
        if sub.redeliveries:
            sub.redeliveries.pop(seq, None)
        acked = sub.acked
        if seq == sub.mark_delete:  # in order (the hot path): the mark moves, no set entry
            mark = seq + 1
            while acked and mark in acked:
                acked.remove(mark)
                mark += 1
            sub.mark_delete = mark
        else:
            acked.add(seq)
        self._trim(stream)

    def nack(self, consumer: int, message_id: MessageId) -> None:
        """Hand a message back for redelivery after the consumer's nack delay.

        A message delivered with a redelivery count at the consumer's ``max_redeliver_count``
        goes to its dead-letter stream instead.
        """
        c = self._live(consumer)
        seq = self._seq_of(c, message_id)
        sub = c.sub
        if sub.outstanding.get(seq) is not c:
            return  # already acked, or not held here: nothing to hand back
        if self._dead_letter(c, seq):
            self._dispatch(c.stream, sub)
            return
        del sub.outstanding[seq]
        self._cancel(c.in_flight.pop(seq))
        if sub.held_hash:
            self._release(sub, seq)
        if c.nack_delay > 0:
            timer = _Timer(self._clock() + c.nack_delay, seq, stream=c.stream, sub=sub)
            sub.delayed[seq] = timer
            if self._counts(sub, failure=True):
                sub.redeliveries[seq] = sub.redeliveries.get(seq, 0) + 1
            self._push(timer)
        else:
            self._hand_back(sub, seq, failure=True)
        self._dispatch(c.stream, sub)

    # ----------------------------------------------------------------------------- time

    def next_deadline(self) -> float | None:
        """When ``tick()`` next has work (nack delays, ack timeouts), or None."""
        timers = self._timers
        while timers and not timers[0].live:
            heapq.heappop(timers)
            self._cancelled -= 1
        return timers[0].due if timers else None

    def tick(self) -> None:
        """Run every timer that is due and apply the message TTL."""
        now = self._clock()
        touched: dict[int, tuple[_Stream, _Subscription]] = {}
        timers = self._timers
        while timers and timers[0].due <= now:
            timer = heapq.heappop(timers)
            c, stream, sub, seq = timer.consumer, timer.stream, timer.sub, timer.seq
            timer.consumer = timer.stream = timer.sub = None
            if c is not None:  # ack timeout
                if self._dead_letter(c, seq):
                    touched[id(c.sub)] = (c.stream, c.sub)
                    continue
                del c.in_flight[seq]
                del c.sub.outstanding[seq]
                if c.sub.held_hash:
                    self._release(c.sub, seq)
                self._hand_back(c.sub, seq, failure=True)
                touched[id(c.sub)] = (c.stream, c.sub)
            elif stream is not None and sub is not None and seq == SWITCH:
                sub.switch = None  # the new active consumer takes over now
                self._take_back_from_standbys(sub)
                touched[id(sub)] = (stream, sub)
            elif stream is not None and sub is not None:  # nack delay over
                del sub.delayed[seq]
                self._ready(sub, seq)
                touched[id(sub)] = (stream, sub)
            else:
                self._cancelled -= 1
        if self._ttl:
            for ref in list(self._streams):
                self.expire(ref, self._ttl)
        for stream, sub in touched.values():
            if stream.subs.get(sub.name) is sub:
                self._dispatch(stream, sub)

    def events(self) -> list[Event]:
        """Everything that happened since the last call, in order."""
        out, self._outbox = self._outbox, []
        return out

    # ----------------------------------------------------------------------- dead letters

    def _dead_letter(self, c: _Consumer, seq: int) -> bool:
        """Dead-letter ``seq`` if ``c`` failed it at its redelivery limit; whether it did.

        Pulsar's client does this when asked to redeliver (nack, ack timeout) a message it
        received with ``redeliveryCount >= maxRedeliverCount``: it publishes the message to
        the dead-letter topic, then acknowledges it. Here both happen in one call, so a
        message reaches the dead-letter stream once. If the stream cannot be created or
        take the message (limits, backlog quota), the message is redelivered as usual.
        """
        sub, stream = c.sub, c.stream
        if c.max_redeliver is None or c.dead_letter is None:
            return False
        if sub.redeliveries.get(seq, 0) < c.max_redeliver:
            return False
        stored = stream.log[seq - stream.base]
        mid = stored.message_id
        properties = dict(stored.properties)
        properties[REAL_TOPIC] = stream.ref.name
        properties[ORIGIN_MESSAGE_ID] = f"{mid.ledger}:{mid.entry}:{mid.partition}"
        target = StreamRef(c.dead_letter, stream.ref.local)
        try:
            if target not in self._streams:
                self.create_stream(target)
            self.publish(target, Envelope(stored.payload, properties, stored.key))
        except (LimitExceeded, BacklogQuotaExceeded):
            return False
        self._ack_seq(stream, sub, seq)
        return True

    # -------------------------------------------------------------------------- helpers

    def _stream(self, ref: StreamRef) -> _Stream:
        stream = self._streams.get(ref)
        if stream is None:
            raise StreamNotFound(f"stream {ref} does not exist")
        return stream

    def _live(self, consumer: int) -> _Consumer:
        c = self._consumers.get(consumer)
        if c is None:
            raise LocalProtocolError(f"consumer {consumer} is closed")
        return c

    def _seq_of(self, c: _Consumer, mid: MessageId) -> int:
        if mid.stream != c.stream.ref.name or mid.ledger != c.stream.ledger:
            raise LocalProtocolError(
                f"{mid} is not a message of stream {c.stream.ref} (subscription {c.sub.name!r})"
            )
        seq = mid.entry
        known = seq < c.sub.read_pos or seq in c.sub.ready_set or seq in c.sub.delayed
        if not known and not c.sub.is_acked(seq):
            raise LocalProtocolError(
                f"{mid} was never delivered on subscription {c.sub.name!r} of {c.stream.ref}"
            )
        return seq

    def _push(self, timer: _Timer) -> None:
        """Add a timer; ``schedule`` moves, so a front end looks at next_deadline() again."""
        heapq.heappush(self._timers, timer)
        self.schedule += 1

    def _cancel(self, timer: _Timer | None) -> None:
        """Forget a timer still in the heap; rebuild the heap once most of it is dead."""
        if timer is None or not timer.live:
            return
        timer.consumer = timer.stream = timer.sub = None
        self._cancelled += 1
        if self._cancelled > COMPACT_AT and 2 * self._cancelled > len(self._timers):
            self._timers = [t for t in self._timers if t.live]
            heapq.heapify(self._timers)
            self._cancelled = 0

    def _cancel_all(self, timers: dict[int, _Timer] | dict[int, _Timer | None]) -> None:
        for timer in timers.values():
            self._cancel(timer)
        timers.clear()

    def _remove_sub(self, stream: _Stream, sub: _Subscription) -> None:
        """A subscription (or reader cursor) goes: its timers and hold on the log go too."""
        del stream.subs[sub.name]
        self._cancel_all(sub.delayed)
        self._cancel(sub.switch)
        self._trim(stream)

    def _counts(self, sub: _Subscription, *, failure: bool) -> bool:
        """Whether a hand-back (``failure``: a nack or ack timeout) adds to the count."""
        if self.rules.redelivery_count == "every_hand_back":
            return True
        return failure and sub.type in ("shared", "key_shared")

    def _hand_back(self, sub: _Subscription, seq: int, *, failure: bool) -> None:
        if self._counts(sub, failure=failure):
            sub.redeliveries[seq] = sub.redeliveries.get(seq, 0) + 1
        self._ready(sub, seq)

    @staticmethod
    def _ready(sub: _Subscription, seq: int) -> None:
        if seq not in sub.ready_set:
            sub.ready_set.add(seq)
            heapq.heappush(sub.ready, seq)

    @staticmethod
    def _release(sub: _Subscription, seq: int) -> None:
        """Key_Shared: ``seq`` is no longer held; its key may move once none of it is."""
        h = sub.held_hash.pop(seq, None)
        if h is None:
            return
        entry = sub.holders[h]
        entry[1] -= 1
        if entry[1] == 0:
            del sub.holders[h]

    def _ack_below(self, stream: _Stream, sub: _Subscription, end: int) -> None:
        """Acknowledge everything below ``end`` on ``sub`` (clear backlog, expiry)."""
        if end <= sub.mark_delete:
            return
        for seq in [s for s in sub.outstanding if s < end]:
            self._cancel(sub.outstanding.pop(seq).in_flight.pop(seq, None))
            if sub.held_hash:
                self._release(sub, seq)
        for seq in [s for s in sub.delayed if s < end]:
            self._cancel(sub.delayed.pop(seq))
        sub.acked = {s for s in sub.acked if s >= end}
        sub.ready_set = {s for s in sub.ready_set if s >= end}
        sub.ready = [s for s in sub.ready if s in sub.ready_set]
        heapq.heapify(sub.ready)
        sub.redeliveries = {s: n for s, n in sub.redeliveries.items() if s >= end}
        sub.mark_delete = end
        sub.read_pos = max(sub.read_pos, end)
        while sub.mark_delete in sub.acked:
            sub.acked.remove(sub.mark_delete)
            sub.mark_delete += 1
        self._trim(stream)
        self._dispatch(stream, sub)

    def _trim(self, stream: _Stream, *, force: bool = False) -> None:
        """Drop log entries every subscription has acknowledged.

        Only durable subscriptions decide what is dropped: with none, messages stay (until
        the TTL or the backlog quota), whatever readers acknowledged; with some, readers
        still hold back what they have not read yet.
        """
        # One plain pass (this runs on every ack): is any subscription durable, and the
        # lowest mark over all of them.
        durable = False
        low = None
        for s in stream.subs.values():
            durable = durable or s.durable
            if low is None or s.mark_delete < low:
                low = s.mark_delete
        if not durable or low is None:
            return
        # Dropping a prefix moves the whole rest of the list: when consumers lag behind a
        # producer, doing it for every ack made each ack cost O(backlog). Drop in chunks
        # (at most TRIM_CHUNK acked messages linger), or at once when everything is acked.
        if force or low - stream.base >= TRIM_CHUNK or (low == stream.end and low > stream.base):
            self._drop_below(stream, low)

    def _drop_below(self, stream: _Stream, new_base: int) -> None:
        count = new_base - stream.base
        if count <= 0:
            return
        log = stream.log
        if count == 1:  # a consumer keeping up: every ack drops one (the hot path)
            size = len(log[0].payload)
            del log[0]
        else:
            size = sum(len(s.payload) for s in itertools.islice(log, count))
            del log[:count]
        stream.size -= size
        self.freed += size
        stream.base = new_base

    def _next_seq(self, stream: _Stream, sub: _Subscription) -> int | None:
        ready, ready_set, acked = sub.ready, sub.ready_set, sub.acked
        while ready:
            seq = ready[0]
            if seq in ready_set and seq >= sub.mark_delete and seq not in acked:
                return seq
            heapq.heappop(ready)
            ready_set.discard(seq)
        pos, end = sub.read_pos, stream.end
        while pos < end and (pos < sub.mark_delete or pos in acked):
            pos += 1
        sub.read_pos = pos
        return pos if pos < end else None

    def _dispatch(self, stream: _Stream, sub: _Subscription) -> bool:
        """Send what ``sub``'s consumers can take; whether a reader's cursor moved.

        Callers trim the log once when a reader moved (a reader holds the log back until it
        is served), instead of every dispatch trimming: a publish dispatches to every
        subscription of its stream, and trimming there cost O(readers) per reader.
        """
        if not sub.consumers:
            return False
        if sub.type == "key_shared":
            self._dispatch_keyed(stream, sub)
            return False
        outbox = self._outbox
        reader = not sub.durable
        shared = sub.type == "shared"
        moved = False
        while True:
            # _next_seq and _pick, with their common cases inline (this runs per message):
            # nothing handed back waits, and the next new message is not acked yet.
            seq = sub.read_pos
            if sub.ready or seq < sub.mark_delete or seq in sub.acked:
                next_seq = self._next_seq(stream, sub)
                if next_seq is None:
                    break
                seq = next_seq
            elif seq >= stream.end:
                break
            if shared:
                picked = self._pick(sub)
                if picked is None:
                    break
                consumer = picked
            else:
                active = sub.active
                if (
                    active is None
                    or sub.switch is not None  # a failover successor still waits
                    or active.permits <= 0
                    or len(active.in_flight) >= active.queue_size
                ):
                    break
                consumer = active
            if sub.ready and sub.ready[0] == seq:
                heapq.heappop(sub.ready)
                sub.ready_set.discard(seq)
            else:
                sub.read_pos = seq + 1
            consumer.permits -= 1
            if reader:
                # A reader acks nothing (Pulsar's reader acks for the application): its
                # cursor moves as it is served, and only its permits, given back as the
                # application takes each message, bound what it is sent.
                sub.mark_delete = seq + 1
                moved = True
            elif consumer.ack_timeout:
                self._hold(consumer, seq)
            else:  # _hold without a timer
                sub.outstanding[seq] = consumer
                consumer.in_flight[seq] = None
            first = stream.log[seq - stream.base]
            count = sub.redeliveries.get(seq, 0) if sub.redeliveries else 0
            outbox.append(
                _deliver(
                    (consumer.id, attrs.evolve(first, redelivery_count=count) if count else first)
                )
            )
        return moved

    def _hold(self, consumer: _Consumer, seq: int) -> None:
        """``consumer`` holds ``seq`` unacked from now on (with its ack timeout, if any)."""
        consumer.sub.outstanding[seq] = consumer
        if consumer.ack_timeout:
            timer = _Timer(self._clock() + consumer.ack_timeout, seq, consumer)
            consumer.in_flight[seq] = timer
            self._push(timer)
        else:
            consumer.in_flight[seq] = None

    def _pick(self, sub: _Subscription) -> _Consumer | None:
        """The consumer that gets the next message, or None if none has a permit and room."""
        if sub.type != "shared":
            c = sub.active
            if c is None or sub.switch is not None:  # a failover successor still waits
                return None
            if c.permits > 0 and len(c.in_flight) < c.queue_size:
                return c
            return None
        n = len(sub.consumers)
        for i in range(n):
            c = sub.consumers[(sub.rr + i) % n]
            if c.permits > 0 and len(c.in_flight) < c.queue_size:
                sub.rr = (sub.rr + i + 1) % n
                return c
        return None

    # ------------------------------------------------------------------------ Key_Shared

    def _dispatch_keyed(self, stream: _Stream, sub: _Subscription) -> None:
        """Key_Shared: each message to the owner of its key's hash, keys in publish order.

        Messages handed back, and messages set aside because their key's owner is busy or
        its key is draining, wait in ``ready`` (Pulsar's replay set) and go first, in
        ``seq`` order. Within one pass a key that could not go blocks its later messages,
        so every key keeps its publish order. Reading new messages stops once
        ``Limits.key_shared_lookahead`` of them are set aside.
        """
        if not any(self._has_room(c) for c in sub.consumers):
            return
        blocked: set[int] = set()
        log, base = stream.log, stream.base
        pending = sorted(sub.ready_set)
        for seq in pending:
            if sub.is_acked(seq):
                sub.ready_set.discard(seq)
                continue
            h = key_hash(log[seq - base].key)
            consumer = None if h in blocked else self._key_owner(sub, h)
            if consumer is None:
                blocked.add(h)
                continue
            sub.ready_set.discard(seq)
            self._send_keyed(stream, sub, consumer, seq, h)
            if not any(self._has_room(c) for c in sub.consumers):
                break
        else:
            end = stream.end
            lookahead = self.limits.key_shared_lookahead
            while sub.read_pos < end and len(sub.ready_set) < lookahead:
                seq = sub.read_pos
                sub.read_pos += 1
                if sub.is_acked(seq):
                    continue
                h = key_hash(log[seq - base].key)
                consumer = None if h in blocked else self._key_owner(sub, h)
                if consumer is None:
                    blocked.add(h)
                    sub.ready_set.add(seq)  # set aside; not a redelivery (no count)
                    continue
                self._send_keyed(stream, sub, consumer, seq, h)
                if not any(self._has_room(c) for c in sub.consumers):
                    break
        sub.ready = sorted(sub.ready_set)  # a sorted list is a heap; drops dead entries

    def _send_keyed(
        self, stream: _Stream, sub: _Subscription, consumer: _Consumer, seq: int, h: int
    ) -> None:
        consumer.permits -= 1
        self._hold(consumer, seq)
        sub.held_hash[seq] = h
        entry = sub.holders.get(h)
        if entry is None:
            sub.holders[h] = [consumer, 1]
        else:
            entry[1] += 1
        first = stream.log[seq - stream.base]
        count = sub.redeliveries.get(seq, 0)
        self._outbox.append(
            Deliver(consumer.id, attrs.evolve(first, redelivery_count=count) if count else first)
        )

    @staticmethod
    def _has_room(c: _Consumer) -> bool:
        return c.permits > 0 and len(c.in_flight) < c.queue_size

    def _key_owner(self, sub: _Subscription, h: int) -> _Consumer | None:
        """Who may get a message of hash ``h`` now, or None (busy, or the key drains)."""
        owner = sub.ring.owner(h)
        if owner is None:
            return None
        entry = sub.holders.get(h)
        if entry is not None and entry[0] is not owner:
            return None  # another consumer still holds unacked messages of this key
        return owner if self._has_room(owner) else None
