"""Thread-safe front end of the broker core: one lock per named broker, a queue per consumer."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import itertools
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs

from streamfw.api import (
    ConsumerOptions,
    ProducerOptions,
    ReaderOptions,
    StreamRef,
    SubscriptionInfo,
    TransportConfig,
    first_ledger_now,
)
from streamfw.broker import (
    ActiveChanged,
    Broker,
    ConsumerClosed,
    Deliver,
    Limits,
    ProducerClosed,
    Rules,
)
from streamfw.errors import Closed, ConfigError, LocalProtocolError, StreamDeleted
from streamfw.message import Delivery, Envelope, MessageId

T = TypeVar("T")


class _HostLock:
    """A mutex whose waiters never sleep owning it: the lock behind every ``_Host`` call.

    A thread woken from a contended ``threading.Lock`` owns it at once, yet still needs the GIL
    from the thread that released it. A producer thread and a consumer thread that take the
    lock for every message then settle into a convoy: every acquisition becomes a pair of
    context switches, and throughput on a 2-vCPU machine drops from ~30k to ~13k messages/s
    (``python -m benchmarks``). Here a contended acquire gives the GIL away for a moment and
    tries again, so only a thread that can run takes the lock. Nothing done under it blocks,
    so the wait is short; uncontended, it costs one extra method call.
    """

    POLL = 50e-6  # seconds between tries while another thread holds the lock

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(False):
            return True
        if not blocking:
            return False
        deadline = None if timeout < 0 else time.monotonic() + timeout
        while not self._lock.acquire(False):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(self.POLL)
        return True

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def _is_owned(self) -> bool:
        # What threading.Condition asks before notify/wait. Its own test, on a lock without
        # this method, is a trial acquire and release through our Python-level acquire, on
        # every delivery to a waiting consumer; every caller here holds the lock.
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self._lock.acquire(False) or self.acquire()  # the uncontended case inline

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class _Inbox:
    def __init__(self, lock: _HostLock) -> None:
        # Keyed by entry (one consumer, one stream: the entry alone names the message), so
        # no MessageId is hashed per message: a redelivery to the same consumer replaces the
        # queued stale copy.
        self.items: collections.OrderedDict[int, Delivery] = collections.OrderedDict()
        # Condition needs only acquire() and release() of its lock.
        self.ready = threading.Condition(lock)  # type: ignore[arg-type]
        self.closed_reason: str | None = None
        self.active = True
        # Threads blocked in receive(): notify only then. (Condition.notify on a lock that
        # is not an RLock costs a trial acquire and release, on every delivery.)
        self.waiting = 0


class _Host:
    """One named broker and the queues of its consumers; every broker call holds ``lock``.

    Two things happen without the lock, so that a producer thread and a consumer thread do
    not take it in turn for every message (each contended hand-over costs both threads a
    wait): a consumer hands out deliveries already in its inbox (``LoopbackConsumer``), and
    the acks and permits that follow are queued in ``deferred``. Whoever takes the lock next
    applies them first (``settle``), in the order they were made, so no caller ever observes
    the broker without them. Every locked section other than a publish, a consumer's own
    receive and ``settle`` bumps ``generation`` (``call`` does): a consumer hands out
    without the lock only while the generation it last saw holds and no broker timer is
    due (``next_due``), so an ack timeout, a nack or an admin call is always seen first.
    """

    def __init__(
        self, name: str, clock: Callable[[], float], limits: Limits | None, rules: Rules | None
    ) -> None:
        self.name = name
        self.clock = clock
        self.broker = Broker(
            clock=clock, limits=limits, first_ledger=first_ledger_now(), rules=rules
        )
        self.lock = _HostLock()
        self.inboxes: dict[int, _Inbox] = {}
        self.closed_producers: dict[int, str] = {}
        self.clients = 0
        # (consumer, message id) to ack, or (consumer, n): n permits to give back.
        self.deferred: collections.deque[tuple[int, MessageId | int]] = collections.deque()
        self.generation = 0
        self.next_due = -math.inf  # when a broker timer is next due; -inf: now (or a TTL)
        self.schedule_seen = -1  # broker.schedule when next_due was last worked out

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        with self.lock:
            self.generation += 1
            self.settle()
            result = fn(*args)
            self._route()
            return result

    def settle(self) -> None:
        """Apply the deferred acks and permits, oldest first; call with the lock held."""
        deferred = self.deferred
        if not deferred:
            return
        broker = self.broker
        while deferred:
            consumer, item = deferred.popleft()
            if item.__class__ is int:
                broker.grant(consumer, item)  # a closed one's permits are ignored
                continue
            try:  # noqa: SIM105  (contextlib.suppress costs an object per message here)
                broker.ack(consumer, item)  # type: ignore[arg-type]
            except LocalProtocolError:
                pass  # its stream was force-deleted meanwhile; nothing left to ack
        # acks and grants add a timer only with the Deliver event it comes with
        self._route(timers_may_change=False)

    def tick_locked(self) -> None:
        deadline = self.broker.next_deadline()
        if (deadline is not None and deadline <= self.clock()) or self.broker.message_ttl:
            self.generation += 1
            self.broker.tick()
            self._route()

    def _route(self, *, timers_may_change: bool = True) -> None:
        more = False  # a stale copy's permit given back may dispatch more
        events = self.broker.events()
        inboxes = self.inboxes
        for event in events:
            if event.__class__ is Deliver:
                consumer, delivery = event
                inbox = inboxes[consumer]
                items = inbox.items
                entry = delivery.message_id.entry
                if items.pop(entry, None) is not None:  # the stale copy used a permit
                    more = self.broker.grant(consumer) or more
                items[entry] = delivery
                if inbox.waiting:
                    inbox.ready.notify()
            elif isinstance(event, ConsumerClosed):
                inbox = self.inboxes[event.consumer]
                inbox.closed_reason = event.reason
                inbox.ready.notify_all()
            elif isinstance(event, ActiveChanged):
                self.inboxes[event.consumer].active = event.active
            elif isinstance(event, ProducerClosed):
                self.closed_producers[event.producer] = event.reason
        if more:
            self._route()
            return
        if not (events or timers_may_change):
            return  # next_due may only be early now (a timer cancelled): that is safe
        broker = self.broker
        if self.next_due == math.inf and broker.schedule == self.schedule_seen:
            return  # no timer, and none added since: nothing can fall due
        self.schedule_seen = broker.schedule
        due = broker.next_deadline()
        if broker.message_ttl:  # every receive sweeps the TTL: never skip the lock
            self.next_due = -math.inf
        else:
            self.next_due = math.inf if due is None else due


_hosts: dict[str, _Host] = {}
_hosts_lock = threading.Lock()


def _acquire(
    name: str, clock: Callable[[], float] | None, limits: Limits | None, rules: Rules | None
) -> _Host:
    with _hosts_lock:
        host = _hosts.get(name)
        if host is None:
            host = _hosts[name] = _Host(name, clock or time.time, limits, rules)
        elif rules is not None and rules != host.broker.rules:
            raise ConfigError(
                f"loopback://{name} is already open with {host.broker.rules!r}, not {rules!r}"
            )
        elif clock is not None and clock is not host.clock:
            raise ConfigError(f"loopback://{name} is already open with another clock")
        elif limits is not None and limits != host.broker.limits:
            # One broker per name: a second client cannot give it other limits silently.
            raise ConfigError(
                f"loopback://{name} is already open with {host.broker.limits!r}, not {limits!r}"
            )
        host.clients += 1
        return host


def _release(host: _Host) -> None:
    with _hosts_lock:
        host.clients -= 1
        if host.clients == 0 and _hosts.get(host.name) is host:
            del _hosts[host.name]


class LoopbackProducer:
    def __init__(self, host: _Host, ref: StreamRef) -> None:
        self._host = host
        self._ref = ref
        self._id = host.call(host.broker.open_producer, ref)
        self._closed = False

    def send_confirmed(self, envelope: Envelope) -> MessageId:
        """Store ``envelope`` and return its id: the broker confirms before this returns."""
        host = self._host
        lock = host.lock
        if not lock._lock.acquire(False):  # _HostLock.__enter__, inline: once per message
            lock.acquire()
        try:
            if host.deferred:
                host.settle()
            if host.closed_producers:
                reason = host.closed_producers.get(self._id)
                if reason is not None:
                    # the broker closes a producer only when its stream is deleted
                    raise StreamDeleted(f"producer on stream {self._ref} closed: {reason}")
            mid = host.broker.publish_from(self._id, envelope)
            host._route()
        finally:
            lock._lock.release()
        return mid

    def send(self, envelope: Envelope) -> cf.Future[MessageId]:
        future: cf.Future[MessageId] = cf.Future()
        try:
            mid = self.send_confirmed(envelope)
        except Exception as exc:  # the future carries every failure to the caller
            future.set_exception(exc)
        else:
            future.set_result(mid)
        return future

    def flush(self, timeout: float | None) -> None:
        return None  # every send is confirmed before it returns

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._host.call(self._host.broker.close_producer, self._id)


class LoopbackConsumer:
    """A consumer's (or reader's) side of the host: its inbox is its receiver queue.

    Permits go back to the broker as Pulsar's client sends them: once the application has
    taken half the receiver queue (``receiver_queue_size // 2``, at least 1), not one by one
    (docs/protocol.md §10). The broker then never has fewer than half the queue's permits
    for a consumer whose inbox is empty, so nothing waits on a permit held back here.
    """

    def __init__(
        self,
        host: _Host,
        ref: StreamRef,
        open_: Callable[[], int],
        *,
        queue_size: int,
        reader: bool = False,
        pull: bool = False,
    ) -> None:
        self._host = host
        self._ref = ref
        self._reader = reader  # acks nothing: the broker moves its cursor as it is served
        self._pull = pull  # pull mode: permits only for what the application asks for
        self._asked = 0  # pull mode: asked for and not handed to the application yet
        self._refill = max(1, queue_size // 2)  # permits given back together
        # Counts every hand-over (and stale copy dropped): each refill-th gives back refill
        # permits. next() on a count is one atomic step, so several threads receiving on one
        # consumer without the lock never lose or repeat a permit, as a += would.
        self._takes = itertools.count(1)
        with host.lock:
            host.generation += 1
            host.settle()
            self._id = open_()
            self._inbox = host.inboxes[self._id] = _Inbox(host.lock)
            host._route()
        self._closed = False
        # Given to the application, not acked yet: entry -> the id handed out with it.
        self._handed: dict[int, MessageId] = {}
        self._seen = -1  # the host generation this consumer's last locked receive saw

    @property
    def active(self) -> bool:
        return self._inbox.active

    def receive(self, timeout: float | None) -> Delivery | None:
        host, inbox = self._host, self._inbox
        if (
            inbox.items
            and not self._pull  # pull mode counts what it hands out, under the lock
            and self._seen == host.generation
            and not self._closed
            and host.clock() < host.next_due
        ):
            delivery = self._take_unlocked()
            if delivery is not None:
                return delivery
        end = None if timeout is None else time.monotonic() + timeout
        with host.lock:
            if self._pull:
                self._ask_locked(1)
            while True:
                host.settle()
                host.tick_locked()
                self._seen = host.generation
                while inbox.items:
                    _, delivery = inbox.items.popitem(last=False)
                    # handed over (or dropped as stale); in pull mode only a stale copy's
                    # permit comes back: the application asks for the rest
                    if (
                        not self._pull
                        and not next(self._takes) % self._refill
                        and host.broker.grant(self._id, self._refill)
                    ):
                        host._route()
                    if self._reader:
                        return delivery
                    # A copy queued before an ack timeout or a clear-backlog may be stale:
                    # hand out only what the broker still counts as held by this consumer.
                    mid = delivery.message_id
                    if host.broker.is_outstanding(self._id, mid):
                        self._handed[mid.entry] = mid
                        self._asked -= self._pull
                        return delivery
                    if self._pull and host.broker.grant(self._id):
                        host._route()
                if inbox.closed_reason is not None:
                    # the broker closes a consumer only when its stream is deleted
                    raise StreamDeleted(
                        f"consumer on stream {self._ref} closed: {inbox.closed_reason}"
                    )
                if self._closed:
                    raise Closed(f"consumer on stream {self._ref} is closed")
                wait = None if end is None else end - time.monotonic()
                if wait is not None and wait <= 0:
                    return None
                deadline = host.broker.next_deadline()
                if deadline is not None:
                    until_due = max(deadline - host.clock(), 0.001)
                    wait = until_due if wait is None else min(wait, until_due)
                inbox.waiting += 1
                try:
                    inbox.ready.wait(wait)
                finally:
                    inbox.waiting -= 1

    def _take_unlocked(self) -> Delivery | None:
        """The next delivery the inbox holds, taken without the lock (see ``_Host``).

        The same steps as a locked receive, with the permits deferred: the broker reads
        (``is_outstanding``) are single lookups, so each sees the state before or after a
        concurrent locked section, as a receive just before or just after it would.
        """
        items, broker = self._inbox.items, self._host.broker
        me = self._id
        while items:
            try:
                _, delivery = items.popitem(last=False)
            except KeyError:  # a locked section dropped the last stale copy meanwhile
                return None
            if not next(self._takes) % self._refill:  # handed over (or dropped as stale)
                self._host.deferred.append((me, self._refill))
            if self._reader:
                return delivery
            mid = delivery.message_id
            if broker.is_outstanding(me, mid):
                self._handed[mid.entry] = mid
                return delivery
        return None

    def request(self, messages: int) -> None:
        """Pull mode: have ``messages`` asked for, counting those asked for and not received.

        Each ask grants the broker that many more permits (Pulsar's WebSocket ``permit``
        frame); outside pull mode the consumer has its receiver queue's worth already.
        """
        if self._pull:
            with self._host.lock:
                self._ask_locked(messages)

    def _ask_locked(self, messages: int) -> None:
        if messages > self._asked and not self._closed:
            more, self._asked = messages - self._asked, messages
            self._host.generation += 1
            self._host.settle()
            if self._host.broker.grant(self._id, more):
                self._host._route()

    def ack(self, message_id: MessageId) -> None:
        if self._closed:
            raise Closed(f"consumer on stream {self._ref} is closed")
        if self._reader:
            return  # readers do not acknowledge
        entry = message_id.entry
        handed = self._handed
        # The very id handed out and not queued again meanwhile (a redelivered copy would
        # have to be dropped as stale before the next hand-out): defer it to the next locked
        # section. Anything else is checked now, so a bad id raises here, in the caller.
        if handed.get(entry) is message_id and entry not in self._inbox.items:
            del handed[entry]
            self._host.deferred.append((self._id, message_id))
        else:
            self._forget(message_id)
            self._host.call(self._host.broker.ack, self._id, message_id)

    def nack(self, message_id: MessageId) -> None:
        consumer = self._live()
        if self._reader:
            return  # readers do not acknowledge
        self._forget(message_id)
        self._host.call(self._host.broker.nack, consumer, message_id)

    def _forget(self, message_id: MessageId) -> None:
        """Not handed out any more (if it was: an id of another stream may share its entry)."""
        entry = getattr(message_id, "entry", None)
        if entry is not None and self._handed.get(entry) == message_id:
            del self._handed[entry]

    def close(self) -> None:
        with self._host.lock:
            self._host.generation += 1
            self._host.settle()  # this consumer's acks count before it lets go
            if self._closed:
                return
            self._closed = True
            self._host.broker.close_consumer(self._id)
            self._host._route()
            self._inbox.ready.notify_all()  # wake a receive() blocked in another thread
            self._host.inboxes.pop(self._id, None)

    def _live(self) -> int:
        if self._closed:
            raise Closed(f"consumer on stream {self._ref} is closed")
        return self._id


class LoopbackTransport:
    """The Transport SPI over a named in-process broker."""

    def __init__(
        self,
        name: str = "default",
        *,
        clock: Callable[[], float] | None = None,
        limits: Limits | None = None,
        rules: Rules | None = None,
    ) -> None:
        self.name = name
        self._host = _acquire(name, clock, limits, rules)
        self._closed = False

    @classmethod
    def from_config(cls, config: TransportConfig) -> LoopbackTransport:
        parts = urlsplit(config.url)
        name = (parts.netloc + parts.path).strip("/") or "default"
        unknown = sorted(set(config.options) - {"clock", "limits", "rules"})
        if unknown:
            raise ConfigError(f"loopback:// does not take option(s): {', '.join(unknown)}")
        limits = config.options.get("limits")
        if limits is not None and not isinstance(limits, Limits):
            raise ConfigError(f"limits must be a streamfw.broker.Limits, got {limits!r}")
        rules = config.options.get("rules")
        if rules is not None and not isinstance(rules, Rules):
            raise ConfigError(f"rules must be a streamfw.broker.Rules, got {rules!r}")
        return cls(name, clock=config.options.get("clock"), limits=limits, rules=rules)

    @property
    def broker(self) -> Broker:
        """The broker core behind this transport (for tests and tools)."""
        return self._host.broker

    def create_stream(self, stream: StreamRef) -> None:
        self._host.call(self._host.broker.create_stream, stream)

    def delete_stream(self, stream: StreamRef, *, force: bool) -> None:
        broker = self._host.broker
        self._host.call(lambda: broker.delete_stream(stream, force=force))

    def list_streams(self, *, local: bool | None) -> list[StreamRef]:
        broker = self._host.broker
        return self._host.call(lambda: broker.list_streams(local=local))

    def backlog(self, stream: StreamRef) -> int:
        return self._host.call(self._host.broker.backlog, stream)

    def stats(self, stream: StreamRef) -> dict[str, Any]:
        return attrs.asdict(self._host.call(self._host.broker.stats, stream))

    def subscriptions(self, stream: StreamRef) -> list[SubscriptionInfo]:
        return self._host.call(self._host.broker.subscriptions, stream)

    def delete_subscription(self, stream: StreamRef, subscription: str) -> None:
        self._host.call(self._host.broker.delete_subscription, stream, subscription)

    def clear_backlog(self, stream: StreamRef, subscription: str | None) -> None:
        self._host.call(self._host.broker.clear_backlog, stream, subscription)

    def open_producer(self, stream: StreamRef, options: ProducerOptions) -> LoopbackProducer:
        return LoopbackProducer(self._host, stream)

    def open_consumer(
        self, stream: StreamRef, subscription: str, options: ConsumerOptions
    ) -> LoopbackConsumer:
        broker = self._host.broker
        return LoopbackConsumer(
            self._host,
            stream,
            lambda: broker.subscribe(stream, subscription, options),
            queue_size=options.receiver_queue_size,
            pull=options.pull_mode,
        )

    def open_reader(self, stream: StreamRef, options: ReaderOptions) -> LoopbackConsumer:
        broker = self._host.broker
        return LoopbackConsumer(
            self._host,
            stream,
            lambda: broker.open_reader(stream, options),
            queue_size=options.receiver_queue_size,
            reader=True,
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self._host)
