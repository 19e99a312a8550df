"""The thread adapter: any transport's sync SPI, run in worker threads, as an ``AsyncTransport``.

``streamfw.aio.connect()`` uses it for a transport whose plugin offers no
``TransportSpec.async_factory`` (or when asked with ``threads=True``). The event loop never
blocks: every sync call runs in a thread, and the adapter keeps the cancellation rules of
``streamfw.aio.spi``:

* Threads. Admin calls, opening and closing links, acks and nacks share a pool of
  ``adapter_workers`` threads (default 4). Each producer has one thread of its own, so its
  messages reach the link in the order the ``send`` calls returned; each consumer has one for
  its blocking ``receive``.
* ``receive``. At most one sync ``receive`` runs per consumer. A cancelled or timed-out async
  ``receive`` leaves it running; whatever it returns is kept and handed to the next
  ``receive``, so nothing is lost. The thread polls in steps of at most ``RECEIVE_POLL``
  seconds, so it never outlives a closed consumer for long.
* ``send``. The adapter keeps the producer's window itself (``max_pending`` unconfirmed
  sends, ``NotSent`` after ``send_timeout``) in an ``asyncio.Semaphore``, so the only wait a
  cancellation can interrupt is the wait for room, which sends nothing; once there is room,
  the message is queued to the producer's thread without another ``await``.
* Admin calls and ``open_*``. A cancelled call may still finish in its thread (as a sync
  call that timed out may have taken effect); a link opened by a cancelled ``open_*`` is
  closed again at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from streamfw.api import (
    ConsumerLink,
    ProducerLink,
    StreamRef,
    SubscriptionInfo,
    Transport,
    TransportConfig,
)
from streamfw.errors import Closed, NotSent, SendTimeout
from streamfw.message import Delivery, Envelope, MessageId
from streamfw.options import ConsumerOptions, ProducerOptions, ReaderOptions

T = TypeVar("T")

DEFAULT_ADAPTER_WORKERS = 4
RECEIVE_POLL = 1.0  # seconds; the longest a sync receive runs before the thread looks again


class _Threads:
    """The pool an adapter's calls run in, bound to the loop that created the adapter."""

    def __init__(self, workers: int, name: str) -> None:
        self.pool = cf.ThreadPoolExecutor(workers, thread_name_prefix=name)
        self.loop = asyncio.get_running_loop()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            call = self.loop.run_in_executor(self.pool, functools.partial(fn, *args))
        except RuntimeError:  # the pool is shut down: its transport was closed
            raise Closed("client is closed") from None
        return await call


class ThreadedTransport:
    """``AsyncTransport`` over a sync ``Transport`` whose calls run in worker threads."""

    def __init__(self, transport: Transport, threads: _Threads) -> None:
        self.sync = transport
        self._threads = threads
        self._closed = False

    @classmethod
    async def open(
        cls, factory: Callable[[TransportConfig], Transport], config: TransportConfig, workers: int
    ) -> ThreadedTransport:
        threads = _Threads(workers, "streamfw-aio")
        try:
            transport = await _opened(threads, factory, config)
        except BaseException:
            threads.pool.shutdown(wait=False)
            raise
        return cls(transport, threads)

    async def create_stream(self, stream: StreamRef) -> None:
        await self._threads.run(self.sync.create_stream, stream)

    async def delete_stream(self, stream: StreamRef, *, force: bool) -> None:
        await self._threads.run(functools.partial(self.sync.delete_stream, force=force), stream)

    async def list_streams(self, *, local: bool | None) -> list[StreamRef]:
        return await self._threads.run(functools.partial(self.sync.list_streams, local=local))

    async def backlog(self, stream: StreamRef) -> int:
        return await self._threads.run(self.sync.backlog, stream)

    async def stats(self, stream: StreamRef) -> dict[str, Any]:
        return await self._threads.run(self.sync.stats, stream)

    async def subscriptions(self, stream: StreamRef) -> list[SubscriptionInfo]:
        return await self._threads.run(self.sync.subscriptions, stream)

    async def delete_subscription(self, stream: StreamRef, subscription: str) -> None:
        await self._threads.run(self.sync.delete_subscription, stream, subscription)

    async def clear_backlog(self, stream: StreamRef, subscription: str | None) -> None:
        await self._threads.run(self.sync.clear_backlog, stream, subscription)

    async def open_producer(self, stream: StreamRef, options: ProducerOptions) -> ThreadedProducer:
        link = await _opened(self._threads, self.sync.open_producer, stream, options)
        return ThreadedProducer(link, options, self._threads, f"producer on stream {stream}")

    async def open_consumer(
        self, stream: StreamRef, subscription: str, options: ConsumerOptions
    ) -> ThreadedConsumer:
        link = await _opened(self._threads, self.sync.open_consumer, stream, subscription, options)
        return ThreadedConsumer(
            link, self._threads, f"consumer of {subscription!r} on stream {stream}"
        )

    async def open_reader(self, stream: StreamRef, options: ReaderOptions) -> ThreadedConsumer:
        link = await _opened(self._threads, self.sync.open_reader, stream, options)
        return ThreadedConsumer(link, self._threads, f"reader on stream {stream}")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.shield(self._threads.run(self.sync.close))
        finally:
            self._threads.pool.shutdown(wait=False)


class ThreadedProducer:
    """``AsyncProducerLink`` over a sync ``ProducerLink``."""

    def __init__(
        self, link: ProducerLink, options: ProducerOptions, threads: _Threads, what: str
    ) -> None:
        self.what = what
        self._link = link
        self._options = options
        self._threads = threads
        self._sender = cf.ThreadPoolExecutor(1, thread_name_prefix="streamfw-aio-send")
        self._room = asyncio.Semaphore(options.max_pending)
        self._pending: set[asyncio.Future[MessageId]] = set()
        self._closed = False

    async def send(self, envelope: Envelope) -> asyncio.Future[MessageId]:
        if self._closed:
            raise Closed(f"{self.what} is closed")
        if not self._room.locked():
            await self._room.acquire()  # room now: returns without suspending
        else:
            try:
                await asyncio.wait_for(self._room.acquire(), self._options.send_timeout)
            except asyncio.TimeoutError:
                raise NotSent(
                    f"{self.what}: not sent: {self._options.max_pending} sends still"
                    f" unconfirmed after {self._options.send_timeout:g} s"
                ) from None
        if self._closed:  # closed while this send waited for room
            self._room.release()
            raise Closed(f"{self.what} is closed")
        # From here on no await: the message is on its way, whatever happens to the caller.
        loop = self._threads.loop
        future: asyncio.Future[MessageId] = loop.create_future()
        self._pending.add(future)
        future.add_done_callback(self._settled)
        handed = self._sender.submit(self._link.send, envelope)
        handed.add_done_callback(lambda h: loop.call_soon_threadsafe(_follow, h, future, loop))
        return future

    async def flush(self, timeout: float | None) -> None:
        pending = set(self._pending)
        if not pending:
            return
        # asyncio.wait cancels none of them, on timeout or when this task is cancelled
        await asyncio.wait(pending, timeout=timeout)
        left = sum(1 for f in pending if not f.done())
        if left:
            raise SendTimeout(
                f"{self.what}: {left} send(s) unconfirmed after {timeout:g} s; they stay"
                " pending and may still be stored (their futures tell)"
            )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # queued behind the sends already handed to the producer's thread
        closing = asyncio.wrap_future(self._sender.submit(self._link.close))
        try:
            await asyncio.shield(closing)
        finally:
            self._sender.shutdown(wait=False)

    def _settled(self, future: asyncio.Future[MessageId]) -> None:
        self._pending.discard(future)
        self._room.release()


def _follow(
    handed: cf.Future[cf.Future[MessageId]],
    future: asyncio.Future[MessageId],
    loop: asyncio.AbstractEventLoop,
) -> None:
    """On the loop: ``handed`` (the sync send call) is done; make ``future`` follow its result."""
    error = handed.exception()
    if error is not None:
        if not future.done():
            future.set_exception(error)
        return
    confirmation = handed.result()
    confirmation.add_done_callback(lambda c: loop.call_soon_threadsafe(_settle, c, future))


def _settle(confirmation: cf.Future[MessageId], future: asyncio.Future[MessageId]) -> None:
    if future.done():  # the application cancelled it: nothing to tell
        return
    error = confirmation.exception()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(confirmation.result())


class ThreadedConsumer:
    """``AsyncConsumerLink`` over a sync ``ConsumerLink``."""

    def __init__(self, link: ConsumerLink, threads: _Threads, what: str) -> None:
        self.what = what
        self._link = link
        self._threads = threads
        self._reader = cf.ThreadPoolExecutor(1, thread_name_prefix="streamfw-aio-receive")
        # The one sync receive running, if any; a cancelled receive leaves it to the next.
        self._inflight: asyncio.Future[Delivery | None] | None = None
        self._closed = False

    async def receive(self, timeout: float | None) -> Delivery | None:
        loop = self._threads.loop
        end = None if timeout is None else loop.time() + timeout
        while True:
            if self._closed:
                raise Closed(f"{self.what} is closed")
            left = None if end is None else max(0.0, end - loop.time())
            inflight = self._inflight
            if inflight is None:
                poll = RECEIVE_POLL if left is None else min(left, RECEIVE_POLL)
                inflight = self._inflight = loop.run_in_executor(
                    self._reader, self._link.receive, poll
                )
            # asyncio.wait leaves the receive running on timeout and when cancelled
            await asyncio.wait((inflight,), timeout=left)
            if not inflight.done():
                return None  # the time is up; the receive stays in flight for the next call
            self._inflight = None
            delivery = inflight.result()
            if delivery is not None:
                return delivery
            if end is not None and loop.time() >= end:
                return None

    async def request(self, messages: int) -> None:
        request = getattr(self._link, "request", None)  # pull mode, where the link has it
        if request is not None:
            await self._threads.run(request, messages)

    async def ack(self, message_id: MessageId) -> None:
        await self._threads.run(self._link.ack, message_id)

    async def nack(self, message_id: MessageId) -> None:
        await self._threads.run(self._link.nack, message_id)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._inflight is not None:  # ends with Closed (or a delivery going back unacked)
            self._inflight.add_done_callback(_retrieved)
        try:
            await asyncio.shield(self._threads.run(self._link.close))
        finally:
            self._reader.shutdown(wait=False)


def _retrieved(call: asyncio.Future[Any]) -> None:
    if not call.cancelled():
        call.exception()  # retrieved: nobody waits for this one any more


async def _opened(threads: _Threads, open_: Callable[..., T], *args: Any) -> T:
    """``open_(*args)`` in a thread; if the caller is cancelled meanwhile, close what opened."""
    call = asyncio.ensure_future(threads.run(open_, *args))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        call.add_done_callback(lambda c: _close_orphan(c, threads))
        raise


def _close_orphan(call: asyncio.Future[Any], threads: _Threads) -> None:
    if call.cancelled() or call.exception() is not None:
        return
    opened = call.result()
    threads.loop.run_in_executor(threads.pool, opened.close)
