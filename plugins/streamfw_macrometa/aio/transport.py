"""``AsyncMacrometaTransport``: the asyncio transport SPI over one ``aiohttp.ClientSession``.

The same REST routes and answers as the threaded ``MacrometaTransport`` (both run the
operations of ``admin``), the same WebSocket sessions (``AsyncLink`` drives the protocol
objects of ``protocol/``), the same settings (``config.parse``) and errors.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, TypeVar

from streamfw.api import (
    ConsumerOptions,
    ProducerOptions,
    ReaderOptions,
    StreamRef,
    SubscriptionInfo,
    TransportConfig,
)
from streamfw.errors import Closed, StreamError
from streamfw_macrometa import admin, config, gateway, wire
from streamfw_macrometa.aio.consumer import AsyncMacrometaConsumer
from streamfw_macrometa.aio.link import AsyncLink, Endpoint
from streamfw_macrometa.aio.producer import AsyncMacrometaProducer
from streamfw_macrometa.aio.rest import AsyncRest
from streamfw_macrometa.aio.session import open_session
from streamfw_macrometa.ws import make_ws_base

T = TypeVar("T")


class AsyncMacrometaTransport:
    """``AsyncTransport`` for ``macrometa://`` URLs; ``close()`` is idempotent."""

    def __init__(self, settings: config.Settings, rest: AsyncRest, tenant: str) -> None:
        self.settings = settings
        self.rest = rest
        self.tenant = tenant
        self._links: weakref.WeakSet[AsyncLink] = weakref.WeakSet()
        self._dc_url: str | None = None
        self._closed = False

    @classmethod
    async def from_config(cls, cfg: TransportConfig) -> AsyncMacrometaTransport:
        """The ``async_factory`` of the macrometa schemes: the sync transport's URL and options."""
        settings = config.parse(cfg)
        session = open_session(settings)
        rest = AsyncRest(settings, session)
        try:
            tenant = settings.tenant or await rest.discover_tenant()
        except BaseException:
            await session.close()
            raise
        return cls(settings, rest, tenant)

    def __repr__(self) -> str:
        return f"<AsyncMacrometaTransport {self.settings.rest_url} fabric={self.settings.fabric!r}>"

    # ------------------------------------------------------------------------- admin

    async def _run(self, operation: admin.Operation[T]) -> T:
        """Drive an ``admin`` operation, awaiting each REST call it asks for."""
        if self._closed:
            raise Closed("client is closed")
        try:
            request = next(operation)
            while True:
                try:
                    result = await self.rest.call(
                        request.method,
                        request.path,
                        params=request.params,
                        stream=request.stream,
                        subscription=request.subscription,
                        on_404=request.on_404,
                    )
                except StreamError as exc:
                    request = operation.throw(exc)
                else:
                    request = operation.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def create_stream(self, stream: StreamRef) -> None:
        await self._run(admin.create_stream(self.settings.fabric, stream))

    async def delete_stream(self, stream: StreamRef, *, force: bool) -> None:
        await self._run(admin.delete_stream(self.settings.fabric, stream, force=force))

    async def list_streams(self, *, local: bool | None) -> list[StreamRef]:
        return await self._run(admin.list_streams(self.settings.fabric, local=local))

    async def backlog(self, stream: StreamRef) -> int:
        return await self._run(admin.backlog(self.settings.fabric, stream))

    async def stats(self, stream: StreamRef) -> dict[str, Any]:
        return await self._run(admin.stats(self.settings.fabric, stream))

    async def subscriptions(self, stream: StreamRef) -> list[SubscriptionInfo]:
        return await self._run(admin.subscriptions(self.settings.fabric, stream))

    async def delete_subscription(self, stream: StreamRef, subscription: str) -> None:
        await self._run(admin.delete_subscription(self.settings.fabric, stream, subscription))

    async def clear_backlog(self, stream: StreamRef, subscription: str | None) -> None:
        await self._run(admin.clear_backlog(self.settings.fabric, stream, subscription))

    # ------------------------------------------------------------------------- links

    async def _endpoint(
        self, kind: str, stream: StreamRef, params: dict[str, str], subscription: str = ""
    ) -> Endpoint:
        await self._run(admin.require(self.settings.fabric, stream))
        if (
            self.settings.gdn
            and stream.local
            and not self.settings.ws_url_fixed
            and not self._dc_url
        ):
            self._dc_url = await self.rest.local_dc_url()
        dc_url = self._dc_url
        base = make_ws_base(self.settings, stream.local, lambda: dc_url or "")
        path = gateway.ws_path(
            admin.session_path(kind, self.tenant, self.settings.fabric, stream, subscription)
        )
        return Endpoint(
            self.settings,
            self.rest,
            base,
            path,
            params,
            stream=stream.name,
            subscription=subscription,
        )

    async def _attach(self, link: AsyncLink) -> None:
        """Connect ``link`` and keep it; a cancelled attach leaves nothing attached."""
        try:
            await link.start()
        except BaseException:
            await link.close()
            raise
        if self._closed:
            await link.close()
            raise Closed("client is closed")
        self._links.add(link)

    async def open_producer(
        self, stream: StreamRef, options: ProducerOptions
    ) -> AsyncMacrometaProducer:
        endpoint = await self._endpoint("producer", stream, admin.producer_query(options))
        link = AsyncMacrometaProducer(endpoint, stream, options)
        await self._attach(link)
        return link

    async def open_consumer(
        self, stream: StreamRef, subscription: str, options: ConsumerOptions
    ) -> AsyncMacrometaConsumer:
        refusal = admin.consumer_refusal(subscription, options, extensions=self.settings.extensions)
        if refusal is not None:
            raise refusal
        params = wire.consumer_query(options, local=stream.local)
        endpoint = await self._endpoint("consumer", stream, params, subscription)
        link = AsyncMacrometaConsumer(endpoint, stream, subscription, pull=options.pull_mode)
        await self._attach(link)
        return link

    async def open_reader(
        self, stream: StreamRef, options: ReaderOptions
    ) -> AsyncMacrometaConsumer:
        params = wire.reader_query(stream.name, options)
        link = AsyncMacrometaConsumer(await self._endpoint("reader", stream, params), stream, None)
        await self._attach(link)
        return link

    # ------------------------------------------------------------------------- close

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Cancelling close() from here on still closes everything: the rest only waits.
        await asyncio.shield(self._close_all(list(self._links)))

    async def _close_all(self, links: list[AsyncLink]) -> None:
        try:
            for link in links:
                await link.close()
        finally:
            await self.rest.session.close()
