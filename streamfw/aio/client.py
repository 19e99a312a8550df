"""``streamfw.aio.connect()``, the asyncio ``Client`` and its ``Stream`` handle."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from streamfw.aio.adapter import DEFAULT_ADAPTER_WORKERS, ThreadedTransport
from streamfw.aio.consumer import Consumer
from streamfw.aio.producer import Producer
from streamfw.aio.spi import AsyncTransport
from streamfw.api import StreamRef, SubscriptionInfo, TransportConfig, check_name
from streamfw.client_core import ClientCore, StreamCore, check_connect, connect_url
from streamfw.codec import AUTO, DEFAULT_MAX_CODEC_STAGES, DEFAULT_MAX_MESSAGE_SIZE, check_limit
from streamfw.errors import AlreadyExists
from streamfw.options import (
    ConsumerOptions,
    ConsumerOptionsDict,
    ProducerOptions,
    ProducerOptionsDict,
    ReaderOptions,
    ReaderOptionsDict,
    ReaderStart,
    options_from_keywords,
)
from streamfw.plugins import PluginSet, installed

if TYPE_CHECKING:
    from typing_extensions import Unpack


class _Closable(Protocol):
    async def close(self) -> None: ...


T = TypeVar("T", bound=_Closable)


class Opening(Generic[T]):
    """Something being opened: ``await`` it for the object, or ``async with`` it to have the
    object closed on the way out. Arguments were checked already; the I/O starts then."""

    def __init__(self, open_: Callable[[], Awaitable[T]]) -> None:
        self._open = open_
        self._opened: T | None = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._open().__await__()

    async def __aenter__(self) -> T:
        self._opened = await self._open()
        return self._opened

    async def __aexit__(self, *exc: object) -> None:
        if self._opened is not None:
            await self._opened.close()


def connect(
    url: str | None = None,
    *,
    plugins: PluginSet | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_codec_stages: int = DEFAULT_MAX_CODEC_STAGES,
    threads: bool = False,
    adapter_workers: int = DEFAULT_ADAPTER_WORKERS,
    **options: Any,
) -> Opening[Client]:
    """Open an asyncio client: ``async with connect(url) as client`` or ``await connect(url)``.

    The URL, the plugins, the codec limits and the transport options are those of
    ``streamfw.connect()``, checked when this is called; the connection opens when awaited.

    Args:
        url: ``scheme://...``; the scheme names the transport. Default: ``$STREAMFW_URL``
            when set and not empty, else ``"loopback://"``, as for ``streamfw.connect()``.
        plugins: the plugins to use; by default those installed.
        max_message_size: as for ``streamfw.connect()`` (default 5 MiB).
        max_codec_stages: as for ``streamfw.connect()`` (default 8).
        threads: run the transport's sync SPI in worker threads (the thread adapter) even if
            its plugin offers a native asyncio one. A transport without one always runs so.
        adapter_workers: threads the adapter shares for admin calls, acks and opening and
            closing links (default 4); each producer and consumer also gets one of its own.
        **options: go to the transport (e.g. ``api_key=``); never printed.

    Raises:
        ConfigError: a bad URL or option.
        PluginError: no transport for the URL's scheme.
    """
    url = connect_url(url)
    scheme = check_connect(url, max_message_size, max_codec_stages)
    check_limit("adapter_workers", adapter_workers)
    found = plugins or installed()
    spec = found.transport(scheme)
    config = TransportConfig(url, options)
    codecs = found.codecs()

    async def open_() -> Client:
        transport: AsyncTransport
        if spec.async_factory is not None and not threads:
            transport = await spec.async_factory(config)
        else:
            transport = await ThreadedTransport.open(spec.factory, config, adapter_workers)
        return Client(
            transport,
            codecs,
            url,
            max_message_size=max_message_size,
            max_codec_stages=max_codec_stages,
            plugins=found,
        )

    return Opening(open_)


class Client(ClientCore[AsyncTransport]):
    """A connection to one broker, for asyncio. ``async with``; ``close()`` is idempotent.

    ``max_message_size`` and ``max_codec_stages`` are the codec limits described in
    ``streamfw.connect()``.
    """

    _KIND = "aio.Client"

    @property
    def native(self) -> bool:
        """False when the transport runs in worker threads (the thread adapter)."""
        return not isinstance(self.transport, ThreadedTransport)

    def stream(self, name: str, *, local: bool = False) -> Stream:
        """A handle on a stream (global unless ``local``); nothing is created yet."""
        return Stream(self, StreamRef(name, local))

    async def streams(self, *, local: bool | None = None) -> list[Stream]:
        """Existing streams: all, or only local (``True``) / global (``False``) ones."""
        return [Stream(self, ref) for ref in await self._transport().list_streams(local=local)]

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.transport.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Stream(StreamCore[Client]):
    """Admin operations on one stream (awaited), and its producers, consumers and readers."""

    _KIND = "aio.Stream"

    async def create(self, *, exist_ok: bool = False) -> Stream:
        try:
            await self._client._transport().create_stream(self.ref)
        except AlreadyExists:
            if not exist_ok:
                raise
        return self

    async def exists(self) -> bool:
        return self.ref in await self._client._transport().list_streams(local=self.ref.local)

    async def delete(self, *, force: bool = False) -> None:
        """Delete; refused with InUse while consumers or producers are attached unless forced."""
        await self._client._transport().delete_stream(self.ref, force=force)

    async def backlog(self) -> int:
        return await self._client._transport().backlog(self.ref)

    async def stats(self) -> dict[str, Any]:
        return await self._client._transport().stats(self.ref)

    async def subscriptions(self) -> list[SubscriptionInfo]:
        return await self._client._transport().subscriptions(self.ref)

    async def delete_subscription(self, name: str) -> None:
        await self._client._transport().delete_subscription(
            self.ref, check_name("subscription", name)
        )

    async def clear_backlog(self, subscription: str | None = None) -> None:
        await self._client._transport().clear_backlog(self.ref, subscription)

    def producer(
        self, *, codec: str = AUTO, **options: Unpack[ProducerOptionsDict]
    ) -> Opening[Producer]:
        """Open a producer: ``async with stream.producer() as p`` (or ``await`` it).

        The arguments are those of the sync ``Stream.producer`` (``ProducerOptions``).
        """
        opened = options_from_keywords(ProducerOptions, options)
        pipeline = self._client._pipeline(codec)
        transport = self._client._transport()

        async def open_() -> Producer:
            link = await transport.open_producer(self.ref, opened)
            return Producer(link, self.ref, pipeline, opened, self._client._hooks())

        return Opening(open_)

    def consumer(
        self,
        subscription: str,
        *,
        codec: str = AUTO,
        max_message_size: int | None = None,
        **options: Unpack[ConsumerOptionsDict],
    ) -> Opening[Consumer]:
        """Attach to a durable subscription: ``async with stream.consumer("sub") as c``.

        The arguments are those of the sync ``Stream.consumer`` (``ConsumerOptions``).

        Raises:
            SubscriptionBusy: the subscription is exclusive and taken (when awaited).
            ConfigError: an unknown option or a value that cannot be used.
        """
        opened = options_from_keywords(ConsumerOptions, options)
        pipeline = self._consumer_pipeline(subscription, codec, max_message_size)
        transport = self._client._transport()

        async def open_() -> Consumer:
            link = await transport.open_consumer(self.ref, subscription, opened)
            return Consumer(link, self.ref, subscription, pipeline, self._client._hooks())

        return Opening(open_)

    def reader(
        self,
        start: ReaderStart | None = None,
        /,
        *,
        codec: str = AUTO,
        max_message_size: int | None = None,
        **options: Unpack[ReaderOptionsDict],
    ) -> Opening[Consumer]:
        """A non-durable reader: ``async with stream.reader("earliest") as r``.

        The arguments are those of the sync ``Stream.reader`` (``ReaderOptions``).
        """
        start_given = {} if start is None else {"start": start}
        opened = options_from_keywords(ReaderOptions, options, positional=start_given)
        pipeline = self._client._pipeline(codec, max_message_size)
        transport = self._client._transport()

        async def open_() -> Consumer:
            link = await transport.open_reader(self.ref, opened)
            return Consumer(link, self.ref, None, pipeline, self._client._hooks())

        return Opening(open_)
