"""The sans-I/O broker: Pulsar subscription semantics with no sockets, threads or sleeps.

How it works. Each stream keeps a log of stored messages, numbered by ``seq``. Each
subscription keeps a cursor over that log:

* ``read_pos``: the next sequence number never dispatched;
* ``mark_delete``: every ``seq`` below it is acknowledged; ``acked`` holds acks above it;
* ``outstanding``: seq -> consumer currently holding it (delivered, not yet acked or nacked);
* ``ready``: unacked messages handed back (nack, ack timeout, consumer gone), sent before new ones;
* ``delayed``: nacked messages waiting for their redelivery time.

Every state change ends in ``_dispatch``, which hands messages to consumers with free room in
their receiver queue (unacked messages in flight), lowest ``seq`` first. Exclusive and Failover
dispatch to the first attached consumer only; Shared goes round robin. Time comes from the
injected ``clock``; callers run ``tick()`` at ``next_deadline()`` for nack delays, ack timeouts
and message TTL. Front ends read what happened from ``events()``: ``Deliver`` to a consumer,
``ActiveChanged`` for failover standbys, ``ConsumerClosed``/``ProducerClosed`` when a forced
delete takes their stream away.

Redelivery count rule (a documented deviation from Pulsar, protocol doc section 7.4): a
message's ``redelivery_count`` grows by one each time it is handed back to its subscription
unacknowledged -- nack, ack timeout, or the consumer holding it going away -- on every
subscription type. Pulsar reports 0 on Exclusive/Failover and ignores disconnects; ours tells
a consumer every time it might be seeing a message for the second time.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
from collections.abc import Callable
from typing import Any

import attrs

from streamfw.api import (
    ConsumerOptions,
    ReaderOptions,
    StreamRef,
    SubscriptionInfo,
    SubscriptionType,
    check_name,
)
from streamfw.errors import (
    AlreadyExists,
    InUse,
    LocalProtocolError,
    StreamNotFound,
    SubscriptionBusy,
    SubscriptionNotFound,
)
from streamfw.message import Delivery, Envelope, MessageId

# ---------------------------------------------------------------------------------- events


@attrs.frozen
class Deliver:
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

# ----------------------------------------------------------------------------------- state


@attrs.define
class _Stored:
    envelope: Envelope
    publish_time: float
    first: Delivery  # what every first delivery hands out: one immutable value, built once


@attrs.define(eq=False)
class _Consumer:
    id: int
    stream: _Stream
    sub: _Subscription
    name: str
    queue_size: int
    ack_timeout: float | None
    nack_delay: float
    in_flight: dict[int, float | None] = attrs.Factory(dict)  # seq -> ack deadline


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
    delayed: dict[int, float] = attrs.Factory(dict)
    redeliveries: dict[int, int] = attrs.Factory(dict)
    rr: int = 0

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
    log: list[_Stored] = attrs.Factory(list)  # log[i] holds seq base + i
    subs: dict[str, _Subscription] = attrs.Factory(dict)
    producers: set[int] = attrs.Factory(set)
    published: int = 0
    end: int = 0  # the next seq to store: base + len(log), kept as a field (hot path)


# ---------------------------------------------------------------------------------- broker

TRIM_CHUNK = 256  # acked messages kept before the log drops them (see _trim)


class Broker:
    """All streams of one emulated tenant. Not thread-safe: its owner serialises calls."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._streams: dict[StreamRef, _Stream] = {}
        self._consumers: dict[int, _Consumer] = {}
        self._producers: dict[int, _Stream] = {}
        self._ids = itertools.count(1)
        self._ledgers = itertools.count(1)
        self._timers: list[tuple[float, int, int, int]] = []  # (due, kind, consumer/sub id, seq)
        self._timer_subs: dict[int, tuple[_Stream, _Subscription]] = {}
        self._outbox: list[Event] = []
        self.message_ttl = 0  # seconds; 0 keeps unacked messages forever

    # ------------------------------------------------------------------ streams (admin)

    def create_stream(self, ref: StreamRef) -> None:
        if ref in self._streams:
            raise AlreadyExists(f"stream {ref} already exists")
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
            self._outbox.append(ConsumerClosed(consumer.id, f"stream {ref} was deleted"))
        for pid in sorted(stream.producers):
            del self._producers[pid]
            self._outbox.append(ProducerClosed(pid, f"stream {ref} was deleted"))
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
        del stream.subs[name]
        self._trim(stream)

    def backlog(self, ref: StreamRef) -> int:
        """Messages not yet acked, summed over the stream's durable subscriptions."""
        stream = self._stream(ref)
        return sum(s.backlog(stream.end) for s in stream.subs.values() if s.durable)

    def clear_backlog(self, ref: StreamRef, subscription: str | None = None) -> None:
        """Skip a subscription (or all of them) to the end of the stream."""
        stream = self._stream(ref)
        if subscription is not None and subscription not in stream.subs:
            raise SubscriptionNotFound(f"stream {ref} has no subscription {subscription!r}")
        for sub in stream.subs.values():
            if subscription is None or sub.name == subscription:
                self._ack_below(stream, sub, stream.end)

    def expire(self, ref: StreamRef, seconds: float) -> None:
        """Acknowledge, on every subscription, the messages older than ``seconds``."""
        stream = self._stream(ref)
        cutoff = self._clock() - seconds
        first_young = stream.base
        for stored in stream.log:
            if stored.publish_time > cutoff:
                break
            first_young += 1
        for sub in list(stream.subs.values()):
            self._ack_below(stream, sub, first_young)
        if not stream.subs:  # nobody would ever ack them: drop them
            del stream.log[: first_young - stream.base]
            stream.base = first_young

    def stats(self, ref: StreamRef) -> dict[str, Any]:
        """Pulsar-like topic statistics."""
        stream = self._stream(ref)
        return {
            "msgInCounter": stream.published,
            "storageSize": sum(len(s.envelope.payload) for s in stream.log),
            "publishers": [{"producerId": p} for p in sorted(stream.producers)],
            "subscriptions": {
                s.name: {
                    "type": s.type.capitalize(),
                    "msgBacklog": s.backlog(stream.end),
                    "unackedMessages": len(s.outstanding),
                    "consumers": [
                        {"consumerName": c.name, "unackedMessages": len(c.in_flight)}
                        for c in s.consumers
                    ],
                }
                for s in stream.subs.values()
                if s.durable
            },
        }

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
        stream = self._stream(ref)
        seq = stream.end
        now = self._clock()
        mid = MessageId(ref.name, stream.ledger, seq)
        when = dt.datetime.fromtimestamp(now, dt.timezone.utc)
        first = Delivery(mid, envelope.payload, envelope.properties, envelope.key, when, 0)
        stream.log.append(_Stored(envelope, now, first))
        stream.end += 1
        stream.published += 1
        for sub in list(stream.subs.values()):
            self._dispatch(stream, sub)
        return mid

    # ------------------------------------------------------------------------- consumers

    def subscribe(self, ref: StreamRef, subscription: str, options: ConsumerOptions) -> int:
        """Attach a consumer; a refused attach (SubscriptionBusy) changes nothing."""
        check_name("subscription", subscription)
        stream = self._stream(ref)
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
            start = stream.base if options.initial_position == "earliest" else stream.end
            sub = stream.subs[subscription] = _Subscription(
                subscription, options.type, True, start, start
            )
        sub.type = options.type
        return self._attach(
            stream,
            sub,
            options.consumer_name,
            options.receiver_queue_size,
            options.ack_timeout,
            options.nack_delay,
        )

    def open_reader(self, ref: StreamRef, options: ReaderOptions) -> int:
        """A non-durable, exclusive cursor that starts where ``options.start`` says."""
        stream = self._stream(ref)
        if options.start == "earliest":
            start = stream.base
        elif options.start == "latest":
            start = stream.end
        else:
            mid = options.start
            if mid.stream != ref.name or mid.ledger != stream.ledger:
                raise LocalProtocolError(f"{mid} is not a message of stream {ref}")
            start = min(max(mid.entry + 1, stream.base), stream.end)
        name = f"reader-{next(self._ids)}"
        sub = stream.subs[name] = _Subscription(name, "exclusive", False, start, start)
        return self._attach(
            stream, sub, options.reader_name, options.receiver_queue_size, None, 0.0
        )

    def _attach(
        self,
        stream: _Stream,
        sub: _Subscription,
        name: str | None,
        queue: int,
        ack_timeout: float | None,
        nack_delay: float,
    ) -> int:
        cid = next(self._ids)
        consumer = _Consumer(
            cid, stream, sub, name or f"consumer-{cid}", queue, ack_timeout, nack_delay
        )
        sub.consumers.append(consumer)
        self._consumers[cid] = consumer
        if sub.type == "failover":
            self._outbox.append(ActiveChanged(cid, sub.consumers[0] is consumer))
        self._dispatch(stream, sub)
        return cid

    def close_consumer(self, consumer: int) -> None:
        """Detach; what it held unacked goes back to the subscription, first in line."""
        c = self._consumers.pop(consumer, None)
        if c is None:
            return
        stream, sub = c.stream, c.sub
        was_active = bool(sub.consumers) and sub.consumers[0] is c
        sub.consumers.remove(c)
        for seq in sorted(c.in_flight):
            del sub.outstanding[seq]
            self._hand_back(sub, seq)
        c.in_flight.clear()
        if not sub.durable:
            del stream.subs[sub.name]
            self._trim(stream)
            return
        if sub.type == "failover" and was_active and sub.consumers:
            self._outbox.append(ActiveChanged(sub.consumers[0].id, True))
        self._dispatch(stream, sub)

    def unsubscribe(self, consumer: int) -> None:
        """Delete the consumer's subscription; refused while other consumers are attached."""
        c = self._live(consumer)
        if len(c.sub.consumers) > 1:
            raise InUse(f"subscription {c.sub.name!r} has other consumers attached")
        self.close_consumer(consumer)
        c.stream.subs.pop(c.sub.name, None)
        self._trim(c.stream)

    def is_outstanding(self, consumer: int, message_id: MessageId) -> bool:
        """Whether ``message_id`` is still held by ``consumer`` (not acked, not handed back)."""
        c = self._consumers.get(consumer)
        if c is None or message_id.ledger != c.stream.ledger:
            return False
        return c.sub.outstanding.get(message_id.entry) is c

    def is_active(self, consumer: int) -> bool:
        c = self._live(consumer)
        return c.sub.consumers[0] is c or c.sub.type == "shared"

    def ack(self, consumer: int, message_id: MessageId) -> None:
        c = self._live(consumer)
        seq = self._seq_of(c, message_id)
        sub = c.sub
        if sub.is_acked(seq):
            return  # acks are idempotent
        holder = sub.outstanding.pop(seq, None)
        if holder is not None:
            holder.in_flight.pop(seq, None)
        sub.ready_set.discard(seq)
        sub.delayed.pop(seq, None)
        sub.redeliveries.pop(seq, None)
        sub.acked.add(seq)
        while sub.mark_delete in sub.acked:
            sub.acked.remove(sub.mark_delete)
            sub.mark_delete += 1
        self._trim(c.stream)
        if sub.ready_set or sub.read_pos < c.stream.end:  # else there is nothing to send
            self._dispatch(c.stream, sub)

    def nack(self, consumer: int, message_id: MessageId) -> None:
        """Hand a message back for redelivery after the consumer's nack delay."""
        c = self._live(consumer)
        seq = self._seq_of(c, message_id)
        sub = c.sub
        if sub.outstanding.get(seq) is not c:
            return  # already acked, or not held here: nothing to hand back
        del sub.outstanding[seq]
        del c.in_flight[seq]
        if c.nack_delay > 0:
            due = self._clock() + c.nack_delay
            sub.delayed[seq] = due
            sub.redeliveries[seq] = sub.redeliveries.get(seq, 0) + 1
            self._timer_subs[id(sub)] = (c.stream, sub)
            heapq.heappush(self._timers, (due, 1, id(sub), seq))
        else:
            self._hand_back(sub, seq)
        self._dispatch(c.stream, sub)

    # ----------------------------------------------------------------------------- time

    def next_deadline(self) -> float | None:
        """When ``tick()`` next has work (nack delays, ack timeouts), or None."""
        while self._timers and not self._timer_live(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def tick(self) -> None:
        """Run every timer that is due and apply the message TTL."""
        now = self._clock()
        touched: dict[int, tuple[_Stream, _Subscription]] = {}
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)
            if not self._timer_live(timer):
                continue
            _, kind, owner, seq = timer
            if kind == 0:  # ack timeout
                c = self._consumers[owner]
                del c.in_flight[seq]
                del c.sub.outstanding[seq]
                self._hand_back(c.sub, seq)
                touched[id(c.sub)] = (c.stream, c.sub)
            else:  # nack delay over
                stream, sub = self._timer_subs[owner]
                del sub.delayed[seq]
                self._ready(sub, seq)
                touched[owner] = (stream, sub)
        if self.message_ttl:
            for ref in list(self._streams):
                self.expire(ref, self.message_ttl)
        for stream, sub in touched.values():
            if stream.subs.get(sub.name) is sub:
                self._dispatch(stream, sub)

    def _timer_live(self, timer: tuple[float, int, int, int]) -> bool:
        due, kind, owner, seq = timer
        if kind == 0:
            c = self._consumers.get(owner)
            return c is not None and c.in_flight.get(seq) == due
        entry = self._timer_subs.get(owner)
        return entry is not None and entry[1].delayed.get(seq) == due

    def events(self) -> list[Event]:
        """Everything that happened since the last call, in order."""
        out, self._outbox = self._outbox, []
        return out

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

    def _hand_back(self, sub: _Subscription, seq: int) -> None:
        sub.redeliveries[seq] = sub.redeliveries.get(seq, 0) + 1
        self._ready(sub, seq)

    @staticmethod
    def _ready(sub: _Subscription, seq: int) -> None:
        if seq not in sub.ready_set:
            sub.ready_set.add(seq)
            heapq.heappush(sub.ready, seq)

    def _ack_below(self, stream: _Stream, sub: _Subscription, end: int) -> None:
        """Acknowledge everything below ``end`` on ``sub`` (clear backlog, expiry)."""
        if end <= sub.mark_delete:
            return
        for seq in [s for s in sub.outstanding if s < end]:
            sub.outstanding.pop(seq).in_flight.pop(seq, None)
        sub.acked = {s for s in sub.acked if s >= end}
        sub.ready_set = {s for s in sub.ready_set if s >= end}
        sub.delayed = {s: t for s, t in sub.delayed.items() if s >= end}
        sub.redeliveries = {s: n for s, n in sub.redeliveries.items() if s >= end}
        sub.mark_delete = end
        sub.read_pos = max(sub.read_pos, end)
        while sub.mark_delete in sub.acked:
            sub.acked.remove(sub.mark_delete)
            sub.mark_delete += 1
        self._trim(stream)
        self._dispatch(stream, sub)

    def _trim(self, stream: _Stream) -> None:
        """Drop log entries every subscription has acknowledged.

        Only durable subscriptions decide what is dropped: with none, messages stay (until
        the TTL), whatever readers acknowledged; with some, readers still hold back what
        they have not read yet.
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
        if low - stream.base >= TRIM_CHUNK or (low == stream.end and low > stream.base):
            del stream.log[: low - stream.base]
            stream.base = low

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

    def _dispatch(self, stream: _Stream, sub: _Subscription) -> None:
        if not sub.consumers:
            return
        outbox = self._outbox
        while True:
            seq = self._next_seq(stream, sub)
            if seq is None:
                return
            consumer = self._pick(sub)
            if consumer is None:
                return
            if sub.ready and sub.ready[0] == seq:
                heapq.heappop(sub.ready)
                sub.ready_set.discard(seq)
            else:
                sub.read_pos = seq + 1
            sub.outstanding[seq] = consumer
            if consumer.ack_timeout:
                deadline = self._clock() + consumer.ack_timeout
                consumer.in_flight[seq] = deadline
                heapq.heappush(self._timers, (deadline, 0, consumer.id, seq))
            else:
                consumer.in_flight[seq] = None
            first = stream.log[seq - stream.base].first
            count = sub.redeliveries.get(seq, 0)
            outbox.append(
                Deliver(
                    consumer.id, attrs.evolve(first, redelivery_count=count) if count else first
                )
            )

    @staticmethod
    def _pick(sub: _Subscription) -> _Consumer | None:
        """The consumer that gets the next message, or None if none has room."""
        if sub.type != "shared":
            first = sub.consumers[0]
            return first if len(first.in_flight) < first.queue_size else None
        n = len(sub.consumers)
        for i in range(n):
            c = sub.consumers[(sub.rr + i) % n]
            if len(c.in_flight) < c.queue_size:
                sub.rr = (sub.rr + i + 1) % n
                return c
        return None
