"""Both macrometa client APIs behind one sync-callable face, so each scenario is written once.

``Api("threaded")`` is the sync API with its websocket-client link; ``Api("asyncio")`` is
``streamfw.aio`` with its aiohttp link, run on an event loop in a helper thread
(``streamfw.testing.aio_facade``) with every call waiting for its result, as the contract kit
runs the async API from sync test bodies. Errors come out as each API raised them. What only
one API has (cancellation, ``async for``, awaitable sends) stays in that API's own tests.

Two levels: ``connect`` gives a client in the sync ``Client``'s shape; ``consumer_on`` and
``producer_on`` give a bare link talking to a ``ScriptedServer`` (no REST: the tenant is set).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from collections.abc import Iterator
from typing import Any, Protocol, cast

import pytest
from streamfw_macrometa import config, gateway
from streamfw_macrometa.aio.consumer import AsyncMacrometaConsumer
from streamfw_macrometa.aio.link import Endpoint
from streamfw_macrometa.aio.producer import AsyncMacrometaProducer
from streamfw_macrometa.aio.rest import AsyncRest
from streamfw_macrometa.aio.session import open_session
from streamfw_macrometa.config import Settings
from streamfw_macrometa.consumer import MacrometaConsumer
from streamfw_macrometa.producer import MacrometaProducer
from streamfw_macrometa.rest import Rest
from streamfw_macrometa.ws import Connector

import streamfw.aio
import streamfw.client
from streamfw.api import ProducerOptions, StreamRef, TransportConfig
from streamfw.client import Client
from streamfw.errors import StreamError
from streamfw.message import Delivery, Envelope, MessageId
from streamfw.testing.aio_facade import FacadeClient, FacadeProducerLink, LoopThread
from tests.macrometa.conftest import KEY
from tests.macrometa.scripted import ScriptedServer

API_NAMES = ("threaded", "asyncio")
CONSUMER_SESSION = "consumer/persistent/acme/c8global._system/c8globals.s/sub"
PRODUCER_SESSION = "producer/persistent/acme/c8global._system/c8globals.s"


class ConsumerLink(Protocol):
    """What the frame tests use of a consumer link, the same on both APIs."""

    @property
    def protocol_errors(self) -> int: ...

    @property
    def failure(self) -> StreamError | None: ...

    def receive(self, timeout: float | None) -> Delivery | None: ...

    def ack(self, message_id: MessageId) -> None: ...


class ProducerLink(Protocol):
    """What the frame tests use of a producer link, the same on both APIs."""

    @property
    def protocol_errors(self) -> int: ...

    def send(self, envelope: Envelope) -> cf.Future[MessageId]: ...


def link_settings(server: ScriptedServer, **options: Any) -> Settings:
    """Settings for a link to ``server``: tenant ``acme``, short deadlines, ``options`` on top."""
    opts = {"api_key": KEY, "tenant": "acme", "timeout": 2.0, "reconnect_deadline": 3.0}
    url = f"macrometa+http://127.0.0.1:{server.port}"
    return config.parse(TransportConfig(url, {**opts, **options}))


@contextlib.contextmanager
def consumer_on(server: ScriptedServer, **options: Any) -> Iterator[MacrometaConsumer]:
    """A threaded consumer link of subscription ``sub`` on stream ``s``, talking to ``server``."""
    with (
        _connector(server, CONSUMER_SESSION, "sub", options) as connector,
        contextlib.closing(MacrometaConsumer(connector, StreamRef("s"), "sub")) as link,
    ):
        yield link


@contextlib.contextmanager
def producer_on(server: ScriptedServer, **options: Any) -> Iterator[MacrometaProducer]:
    """A threaded producer link on stream ``s``, talking to ``server``."""
    with (
        _connector(server, PRODUCER_SESSION, "", options) as connector,
        contextlib.closing(MacrometaProducer(connector, StreamRef("s"), ProducerOptions())) as link,
    ):
        yield link


@contextlib.contextmanager
def _connector(
    server: ScriptedServer, session: str, subscription: str, options: dict[str, Any]
) -> Iterator[Connector]:
    settings = link_settings(server, **options)
    rest = Rest(settings)
    try:
        yield Connector(
            settings, rest, settings.ws_url, session, {}, stream="s", subscription=subscription
        )
    finally:
        rest.close()
        server.close()


class Api:
    """One of ``API_NAMES``; ``close`` closes every client and link it made."""

    def __init__(self, name: str) -> None:
        if name not in API_NAMES:
            raise ValueError(f"no macrometa client API named {name!r}; one of {API_NAMES}")
        self.name = name
        self._loop: LoopThread | None = None
        self._exits = contextlib.ExitStack()

    def __repr__(self) -> str:
        return f"Api({self.name!r})"

    @property
    def loop(self) -> LoopThread:
        """The asyncio API's event loop thread, started on first use."""
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop

    def connect(self, url: str, **options: Any) -> Client:
        """``connect(url, **options)`` of this API; a failed connect raises as that API does."""
        if self.name == "threaded":
            client = streamfw.client.connect(url, **options)
        else:

            async def opened() -> streamfw.aio.Client:
                return await streamfw.aio.connect(url, **options)

            # the sync Client's shape, duck-typed, as the contract kit uses it
            client = cast(Client, FacadeClient(self.loop.run(opened()), self.loop))
        self._exits.callback(client.close)
        return client

    def is_native(self, client: Client) -> bool:
        """Whether ``client`` runs its transport natively (the sync API has no other way)."""
        if isinstance(client, FacadeClient):
            return client.aio.native
        return True

    def record_otps(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        """Every OTP this API's REST client fetches from now on, in order."""
        issued: list[str] = []
        if self.name == "threaded":
            fetch = Rest.otp

            def spy(rest: Rest, timeout: float | None = None) -> str:
                issued.append(fetch(rest, timeout))
                return issued[-1]

            monkeypatch.setattr(Rest, "otp", spy)
        else:
            fetch_async = AsyncRest.otp

            async def spy_async(rest: AsyncRest, timeout: float | None = None) -> str:
                issued.append(await fetch_async(rest, timeout))
                return issued[-1]

            monkeypatch.setattr(AsyncRest, "otp", spy_async)
        return issued

    def consumer_on(self, server: ScriptedServer, **options: Any) -> ConsumerLink:
        """A consumer link of subscription ``sub`` on stream ``s``, talking to ``server``."""
        if self.name == "threaded":
            return self._exits.enter_context(consumer_on(server, **options))

        async def start() -> AsyncMacrometaConsumer:
            endpoint = await self._endpoint(server, CONSUMER_SESSION, "sub", options)
            link = AsyncMacrometaConsumer(endpoint, StreamRef("s"), "sub")
            self._exits.callback(lambda: self.loop.run(link.close()))
            await link.start()
            return link

        return _AsyncConsumer(self.loop.run(start()), self.loop)

    def producer_on(self, server: ScriptedServer, **options: Any) -> ProducerLink:
        """A producer link on stream ``s``, talking to ``server``."""
        if self.name == "threaded":
            return self._exits.enter_context(producer_on(server, **options))

        async def start() -> AsyncMacrometaProducer:
            endpoint = await self._endpoint(server, PRODUCER_SESSION, "", options)
            link = AsyncMacrometaProducer(endpoint, StreamRef("s"), ProducerOptions())
            self._exits.callback(lambda: self.loop.run(link.close()))
            await link.start()
            return link

        return _AsyncProducer(self.loop.run(start()), self.loop)

    async def _endpoint(
        self, server: ScriptedServer, session: str, subscription: str, options: dict[str, Any]
    ) -> Endpoint:
        settings = link_settings(server, **options)
        http = open_session(settings)  # on the loop that will use it, as aiohttp wants
        self._exits.callback(server.close)
        self._exits.callback(lambda: self.loop.run(http.close()))
        rest = AsyncRest(settings, http)
        path = gateway.ws_path(session)
        return Endpoint(
            settings, rest, settings.ws_url, path, {}, stream="s", subscription=subscription
        )

    def close(self) -> None:
        try:
            self._exits.close()
        finally:
            if self._loop is not None:
                self._loop.close()


class _AsyncConsumer:
    """A ``ConsumerLink`` over an ``AsyncMacrometaConsumer`` on ``loop``."""

    def __init__(self, link: AsyncMacrometaConsumer, loop: LoopThread) -> None:
        self.aio = link
        self._loop = loop

    @property
    def protocol_errors(self) -> int:
        return self.aio.protocol_errors

    @property
    def failure(self) -> StreamError | None:
        return self.aio.failure

    def receive(self, timeout: float | None) -> Delivery | None:
        return self._loop.run(self.aio.receive(timeout))

    def ack(self, message_id: MessageId) -> None:
        self._loop.run(self.aio.ack(message_id))


class _AsyncProducer(FacadeProducerLink):
    """A ``ProducerLink`` over an ``AsyncMacrometaProducer``: the kit's facade plus its count."""

    @property
    def protocol_errors(self) -> int:
        return cast(AsyncMacrometaProducer, self.aio).protocol_errors
