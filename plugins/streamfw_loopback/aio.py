"""The ``loopback://`` transport for ``streamfw.aio``: the broker driven from the event loop.

One broker per name, shared with the sync transport. ``loopback://orders`` opened by
``streamfw.connect()`` and by ``streamfw.aio.connect()`` in one process is the same broker
(the same ``_Host`` in ``streamfw_loopback.transport``): a sync producer in a thread and an
async consumer on the event loop see each other, and the broker lives while either has a
client open. Sharing is the point of a named in-process broker; two brokers behind one name
would split what a user reads as one stream.

No thread is started. Every call takes the host's lock, as the sync transport does, and does
nothing under it that waits, so the event loop holds it for a few microseconds at most (a sync
thread holding it meanwhile makes the loop spin that long, never longer). The async consumer
reuses the sync one's bookkeeping (``LoopbackConsumer``: stale copies, permits, deferred acks)
through a non-waiting ``receive(0)``, and replaces its inbox's ``threading.Condition`` by a
``_Waker``: when the broker routes a delivery to the inbox -- from the loop or from a sync
producer's thread -- the waker resolves the future the async ``receive`` awaits (from another
thread through ``call_soon_threadsafe``). Broker timers (nack delay, ack timeout, TTL) are due
at ``next_deadline()`` on the broker's clock; a waiting ``receive`` wakes then and ticks, as
the sync one does.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import Any

from streamfw.api import (
    ConsumerOptions,
    ProducerOptions,
    ReaderOptions,
    StreamRef,
    SubscriptionInfo,
    TransportConfig,
)
from streamfw.message import Delivery, Envelope, MessageId
from streamfw_loopback.transport import LoopbackConsumer, LoopbackProducer, LoopbackTransport


class _Waker:
    """Stands in for an inbox's ``threading.Condition``: wakes the async ``receive`` calls.

    The host calls ``notify`` and ``notify_all`` with its lock held, from whichever thread
    routed the event; ``arm`` and ``disarm`` run under the same lock. Every waiting
    ``receive`` is woken (several tasks may share one consumer); each looks again, and those
    that find nothing wait again.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.get_ident()  # the loop's thread: it created this waker
        self._waiting: list[asyncio.Future[None]] = []

    def arm(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        self._waiting.append(future)
        return future

    def disarm(self, future: asyncio.Future[None]) -> None:
        if future in self._waiting:
            self._waiting.remove(future)

    def notify(self, n: int = 1) -> None:
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        if threading.get_ident() == self._thread:
            for future in waiting:
                _wake(future)
        else:
            for future in waiting:
                self._loop.call_soon_threadsafe(_wake, future)

    notify_all = notify


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AsyncLoopbackProducer:
    """``AsyncInlineProducerLink``: every send is stored (or refused) before it returns."""

    def __init__(self, sync: LoopbackProducer) -> None:
        self._sync = sync
        self._loop = asyncio.get_running_loop()
        # The sync producer's own: takes the lock only, never waits. Bound here, so that a
        # send costs no call of this class's.
        self.send_confirmed: Callable[[Envelope], MessageId] = sync.send_confirmed

    async def send(self, envelope: Envelope) -> asyncio.Future[MessageId]:
        future: asyncio.Future[MessageId] = self._loop.create_future()
        try:
            future.set_result(self._sync.send_confirmed(envelope))  # stored before it returns
        except Exception as exc:  # the future carries every failure, as the sync link's does
            future.set_exception(exc)
        return future

    async def flush(self, timeout: float | None) -> None:
        return None  # every send is confirmed before it returns

    async def close(self) -> None:
        self._sync.close()


class AsyncLoopbackConsumer:
    """``AsyncInlineConsumerLink`` over a ``LoopbackConsumer`` whose inbox wakes the event loop.

    ``receive_nowait``, ``ack_nowait`` and ``nack_nowait`` are the sync consumer's own
    non-waiting calls (``receive(0)``, ``ack``, ``nack``), bound when the link is made so that
    a message costs no call of this class's: they take the host's lock at most, as every call
    here does.
    """

    def __init__(self, sync: LoopbackConsumer) -> None:
        self._sync = sync
        self._host = sync._host
        self._inbox = sync._inbox
        self._loop = asyncio.get_running_loop()
        self._waker = _Waker(self._loop)
        with self._host.lock:
            self._inbox.ready = self._waker  # type: ignore[assignment]
        self.receive_nowait: Callable[[], Delivery | None] = functools.partial(sync.receive, 0)
        self.ack_nowait: Callable[[MessageId], None] = sync.ack
        self.nack_nowait: Callable[[MessageId], None] = sync.nack

    async def receive(self, timeout: float | None) -> Delivery | None:
        delivery = self._sync.receive(0)  # never waits with a zero timeout
        if delivery is not None or timeout == 0:
            return delivery
        loop = self._loop
        end = None if timeout is None else loop.time() + timeout
        host, inbox = self._host, self._inbox
        while True:
            with host.lock:
                woken = self._waker.arm()
                inbox.waiting += 1
            try:
                # armed before looking again: a delivery routed from here on wakes us
                delivery = self._sync.receive(0)
                if delivery is not None:
                    return delivery
                wait = None if end is None else end - loop.time()
                if wait is not None and wait <= 0:
                    return None
                with host.lock:
                    deadline = host.broker.next_deadline()
                if deadline is not None:  # a broker timer falls due: wake to tick it
                    until_due = max(deadline - host.clock(), 0.001)
                    wait = until_due if wait is None else min(wait, until_due)
                timer = None if wait is None else loop.call_later(wait, _wake, woken)
                try:
                    await woken  # a cancellation lands here, with nothing taken
                finally:
                    if timer is not None:
                        timer.cancel()
            finally:
                with host.lock:
                    inbox.waiting -= 1
                    self._waker.disarm(woken)

    async def request(self, messages: int) -> None:
        self._sync.request(messages)  # takes the lock only; never waits

    async def ack(self, message_id: MessageId) -> None:
        self._sync.ack(message_id)

    async def nack(self, message_id: MessageId) -> None:
        self._sync.nack(message_id)

    async def close(self) -> None:
        self._sync.close()  # wakes a waiting receive, which then raises Closed


class AsyncLoopbackTransport:
    """``AsyncTransport`` over the named broker a ``LoopbackTransport`` holds."""

    def __init__(self, sync: LoopbackTransport) -> None:
        self.sync = sync

    @classmethod
    async def from_config(cls, config: TransportConfig) -> AsyncLoopbackTransport:
        """The ``async_factory`` of ``loopback://``: the same URL and options as the sync one."""
        return cls(LoopbackTransport.from_config(config))

    @property
    def name(self) -> str:
        return self.sync.name

    async def create_stream(self, stream: StreamRef) -> None:
        self.sync.create_stream(stream)

    async def delete_stream(self, stream: StreamRef, *, force: bool) -> None:
        self.sync.delete_stream(stream, force=force)

    async def list_streams(self, *, local: bool | None) -> list[StreamRef]:
        return self.sync.list_streams(local=local)

    async def backlog(self, stream: StreamRef) -> int:
        return self.sync.backlog(stream)

    async def stats(self, stream: StreamRef) -> dict[str, Any]:
        return self.sync.stats(stream)

    async def subscriptions(self, stream: StreamRef) -> list[SubscriptionInfo]:
        return self.sync.subscriptions(stream)

    async def delete_subscription(self, stream: StreamRef, subscription: str) -> None:
        self.sync.delete_subscription(stream, subscription)

    async def clear_backlog(self, stream: StreamRef, subscription: str | None) -> None:
        self.sync.clear_backlog(stream, subscription)

    async def open_producer(
        self, stream: StreamRef, options: ProducerOptions
    ) -> AsyncLoopbackProducer:
        return AsyncLoopbackProducer(self.sync.open_producer(stream, options))

    async def open_consumer(
        self, stream: StreamRef, subscription: str, options: ConsumerOptions
    ) -> AsyncLoopbackConsumer:
        return AsyncLoopbackConsumer(self.sync.open_consumer(stream, subscription, options))

    async def open_reader(self, stream: StreamRef, options: ReaderOptions) -> AsyncLoopbackConsumer:
        return AsyncLoopbackConsumer(self.sync.open_reader(stream, options))

    async def close(self) -> None:
        self.sync.close()
