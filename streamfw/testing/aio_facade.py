"""A sync facade over ``streamfw.aio``: the contract kit and the state machine, run on asyncio.

The contract tests and the hypothesis state machine are written against the sync API. Rather
than a second, async copy of them, ``AioHarness`` wraps any harness so that its
``client()`` is a ``FacadeClient``: the sync API's shape, every call of which runs the
``streamfw.aio`` API on an event loop in a helper thread and waits for it. The same test code
then checks the async API, transport and all: values, errors (raised as the async API raised
them), ``DecodeError.undecodable``, acks through old copies, timers.

What it cannot check is asyncio-only behaviour (cancellation, ``async for``, the non-blocking
``send_async``); ``tests/aio/`` covers that directly. ``cut()`` (the state machine's rule that
drops every connection) is offered where the wrapped harness has ``cut_aio``, which drops the
connections of one asyncio client; the wrapped harness's own ``cut`` reaches only the sync
clients it made.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any, TypeVar, cast

import streamfw.aio
from streamfw.api import StreamRef, SubscriptionInfo
from streamfw.client import Client
from streamfw.consumer import Consumer, MessageIterator
from streamfw.errors import DecodeError
from streamfw.message import Envelope, Message, MessageId
from streamfw.testing.harness import Harness

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread; ``run`` waits for a coroutine's result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="streamfw-aio-facade", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> cf.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class AioHarness:
    """``harness`` with the ``streamfw.aio`` API behind the sync API's shape.

    The wrapped harness says how to reach its broker with ``url`` and ``options`` (the
    arguments of ``connect()``); its clock and ``advance`` are used as they are. ``settle`` is
    twice the wrapped one: every call crosses to the loop thread and back, and on a loaded
    machine a state machine step that waited the sync ``settle`` sometimes saw a message the
    replay of the same step did not (hypothesis then reports a flaky strategy).
    """

    def __init__(self, inner: Harness) -> None:
        self.inner = inner
        self.name = f"{inner.name}-aio"
        self.settle = inner.settle * 2  # a call crosses to the loop thread and back
        self.url: str = getattr(inner, "url")  # noqa: B009  # not in the Harness protocol
        self.options: Mapping[str, Any] = getattr(inner, "options", {})
        self.loop = LoopThread()
        self._clients: weakref.WeakSet[streamfw.aio.Client] = weakref.WeakSet()

    def client(self) -> Client:
        async def connect() -> streamfw.aio.Client:
            return await streamfw.aio.connect(self.url, **self.options)

        client = self.loop.run(connect())
        self._clients.add(client)
        # the sync Client's shape, duck-typed: the kit calls what both offer
        return cast(Client, FacadeClient(client, self.loop))

    def advance(self, seconds: float) -> None:
        self.inner.advance(seconds)

    def __getattr__(self, name: str) -> Any:
        # ``cut`` exists only where the wrapped harness can cut an asyncio client (the state
        # machine adds its rule when it finds one); the wrapped ``cut`` reaches only the sync
        # clients it made, not ours. The rest are the wrapped harness's own settings
        # (``redelivery_rule``, ``examples``, ...).
        if name == "cut" and callable(getattr(self.inner, "cut_aio", None)):
            return self._cut
        if name in ("cut", "cut_aio", "inner") or name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _cut(self) -> None:
        """Drop every connection of the clients made here, on their loop; they reconnect."""
        inner: Any = self.inner  # ``cut_aio`` is optional: not in the Harness protocol

        async def cut_all() -> None:
            for client in list(self._clients):
                await inner.cut_aio(client)

        self.loop.run(cut_all())

    def close(self) -> None:
        try:
            self.loop.close()
        finally:
            self.inner.close()


class FacadeClient:
    """The sync ``Client``'s methods over a ``streamfw.aio.Client``."""

    def __init__(self, client: streamfw.aio.Client, loop: LoopThread) -> None:
        self.aio = client
        self.url = client.url
        self._loop = loop
        self.transport = FacadeTransport(client.transport, loop)

    def stream(self, name: str, *, local: bool = False) -> FacadeStream:
        return FacadeStream(self.aio.stream(name, local=local), self._loop)

    def streams(self, *, local: bool | None = None) -> list[FacadeStream]:
        found = self._loop.run(self.aio.streams(local=local))
        return [FacadeStream(s, self._loop) for s in found]

    def close(self) -> None:
        self._loop.run(self.aio.close())

    def __enter__(self) -> FacadeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FacadeStream:
    def __init__(self, stream: streamfw.aio.Stream, loop: LoopThread) -> None:
        self.aio = stream
        self.ref = stream.ref
        self.name = stream.name
        self.local = stream.local
        self._loop = loop

    def create(self, *, exist_ok: bool = False) -> FacadeStream:
        self._loop.run(self.aio.create(exist_ok=exist_ok))
        return self

    def exists(self) -> bool:
        return self._loop.run(self.aio.exists())

    def delete(self, *, force: bool = False) -> None:
        self._loop.run(self.aio.delete(force=force))

    def backlog(self) -> int:
        return self._loop.run(self.aio.backlog())

    def stats(self) -> dict[str, Any]:
        return self._loop.run(self.aio.stats())

    def subscriptions(self) -> list[SubscriptionInfo]:
        return self._loop.run(self.aio.subscriptions())

    def delete_subscription(self, name: str) -> None:
        self._loop.run(self.aio.delete_subscription(name))

    def clear_backlog(self, subscription: str | None = None) -> None:
        self._loop.run(self.aio.clear_backlog(subscription))

    def producer(self, **options: Any) -> FacadeProducer:
        return FacadeProducer(self._loop.run(_opened(self.aio.producer(**options))), self._loop)

    def consumer(self, subscription: str, **options: Any) -> FacadeConsumer:
        opening = self.aio.consumer(subscription, **options)
        return FacadeConsumer(self._loop.run(_opened(opening)), self._loop)

    def reader(self, *start: Any, **options: Any) -> FacadeConsumer:
        opening = self.aio.reader(*start, **options)
        return FacadeConsumer(self._loop.run(_opened(opening)), self._loop)


async def _opened(opening: Awaitable[T]) -> T:
    return await opening


class FacadeProducer:
    def __init__(self, producer: streamfw.aio.Producer, loop: LoopThread) -> None:
        self.aio = producer
        self._loop = loop

    def send(self, value: Any, **kwargs: Any) -> MessageId:
        return self._loop.run(self.aio.send(value, **kwargs))

    def send_async(self, value: Any, **kwargs: Any) -> cf.Future[MessageId]:
        # As the sync send_async, a value that does not encode raises here, not in the future.
        confirmation = self._loop.run(self.aio.send_async(value, **kwargs))

        async def confirmed() -> MessageId:
            return await confirmation

        return self._loop.submit(confirmed())

    def flush(self, timeout: float | None = None) -> None:
        self._loop.run(self.aio.flush(timeout))

    def close(self) -> None:
        self._loop.run(self.aio.close())

    def __enter__(self) -> FacadeProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_PLAIN_CONSUMER_VALUES = frozenset({"stream", "subscription", "max_message_size"})


class FacadeConsumer:
    """The sync ``Consumer``'s methods; messages come back as sync ``Message`` values."""

    def __init__(self, consumer: streamfw.aio.Consumer, loop: LoopThread) -> None:
        self.aio = consumer
        self._loop = loop
        self._acker = _Acker(consumer, loop)

    def receive(self, timeout: float | None = None) -> Message | None:
        with self._undecodable_as_sync():
            got = self._loop.run(self.aio.receive(timeout))
        return None if got is None else self._sync(got)

    @contextlib.contextmanager
    def _undecodable_as_sync(self) -> Iterator[None]:
        try:
            yield
        except DecodeError as exc:
            bad = exc.undecodable
            if isinstance(bad, streamfw.aio.Message):
                exc.undecodable = self._sync(bad)
            raise

    def receive_many(self, max_messages: int, timeout: float | None = None) -> list[Message]:
        with self._undecodable_as_sync():
            got = self._loop.run(self.aio.receive_many(max_messages, timeout))
        return [self._sync(m) for m in got]

    def ack(self, message: Message | MessageId) -> None:
        self._acker.ack(message.id if isinstance(message, Message) else message)

    def nack(self, message: Message | MessageId) -> None:
        self._acker.nack(message.id if isinstance(message, Message) else message)

    def close(self) -> None:
        self._loop.run(self.aio.close())

    def messages(
        self, on_decode_error: Callable[[DecodeError[Message]], object] | None = None
    ) -> Iterator[Message]:
        return MessageIterator(cast(Consumer, self), on_decode_error)

    def __iter__(self) -> Iterator[Message]:
        return MessageIterator(cast(Consumer, self), None)  # the sync iterator's own rules

    def __getattr__(self, name: str) -> Any:
        # Plain read-only values are the same on both APIs; anything else (a method the
        # facade does not wrap) would hand a sync test a coroutine, so it stays an error.
        if name in _PLAIN_CONSUMER_VALUES:
            return getattr(self.aio, name)
        raise AttributeError(f"the asyncio facade does not offer Consumer.{name}")

    def __enter__(self) -> FacadeConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sync(self, m: streamfw.aio.Message) -> Message:
        return Message(
            m.id,
            m.value,
            m.payload,
            m.properties,
            m.key,
            m.publish_time,
            m.redelivery_count,
            m.stream,
            m.subscription,
            acker=self._acker,
        )


class _Acker:
    def __init__(self, consumer: streamfw.aio.Consumer, loop: LoopThread) -> None:
        self._consumer = consumer
        self._loop = loop

    def ack(self, message_id: MessageId) -> None:
        self._loop.run(self._consumer.ack(message_id))

    def nack(self, message_id: MessageId) -> None:
        self._loop.run(self._consumer.nack(message_id))


class FacadeTransport:
    """A sync view of an ``AsyncTransport``, for tests that reach under the client."""

    def __init__(self, transport: streamfw.aio.AsyncTransport, loop: LoopThread) -> None:
        self.aio = transport
        self._loop = loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.aio, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run(method(*args, **kwargs))

        return call

    def open_producer(self, stream: StreamRef, options: Any) -> FacadeProducerLink:
        link = self._loop.run(self.aio.open_producer(stream, options))
        return FacadeProducerLink(link, self._loop)


class FacadeProducerLink:
    """A sync ``ProducerLink`` over an ``AsyncProducerLink``."""

    def __init__(self, link: streamfw.aio.AsyncProducerLink, loop: LoopThread) -> None:
        self.aio = link
        self._loop = loop

    def send(self, envelope: Envelope) -> cf.Future[MessageId]:
        async def send() -> MessageId:
            return await (await self.aio.send(envelope))

        return self._loop.submit(send())

    def flush(self, timeout: float | None) -> None:
        self._loop.run(self.aio.flush(timeout))

    def close(self) -> None:
        self._loop.run(self.aio.close())
