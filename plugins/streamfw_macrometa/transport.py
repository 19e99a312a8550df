"""``MacrometaTransport``: the Transport SPI over GDN's REST admin API and WebSocket streams.

REST routes (docs/protocol.md §5; ``…`` = ``/_fabric/<fabric>/_api/streams``):

============================  ==================================================
create_stream                 ``POST …/<name>?global=true|false``  (409 AlreadyExists)
delete_stream                 ``DELETE …/<topic>[?force=true]``    (404, 412 InUse)
list_streams                  ``GET …[?global=true|false]``
backlog                       ``GET …/<topic>/backlog``            (``messageBacklog``)
stats                         ``GET …/<topic>/stats``
subscriptions                 ``GET …/<topic>/subscriptions`` + ``…/stats`` for details
delete_subscription           ``DELETE …/<topic>/subscriptions/<sub>`` (404, 412)
clear_backlog(stream, None)   ``POST …/<topic>/expiry/0`` (every subscription of the stream)
clear_backlog(stream, sub)    ``POST …/clearbacklog/<sub>?global=…`` -- GDN's route is
                              fabric-wide, so it is refused (Unsupported) when another
                              stream of the same scope has a subscription of that name
============================  ==================================================
"""

from __future__ import annotations

import threading
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
from streamfw.errors import Closed
from streamfw_macrometa import admin, config, wire
from streamfw_macrometa.consumer import MacrometaConsumer
from streamfw_macrometa.producer import MacrometaProducer
from streamfw_macrometa.rest import Rest
from streamfw_macrometa.ws import Connector, Link, make_ws_base

T = TypeVar("T")


class MacrometaTransport:
    """The Transport SPI for ``macrometa://`` URLs. Thread-safe; ``close()`` is idempotent."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.rest = Rest(settings)
        self._links: weakref.WeakSet[Link] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._dc_url: str | None = None
        self._closed = False
        try:
            self.tenant = settings.tenant or self.rest.discover_tenant()
        except BaseException:
            self.rest.close()
            raise

    @classmethod
    def from_config(cls, cfg: TransportConfig) -> MacrometaTransport:
        return cls(config.parse(cfg))

    def __repr__(self) -> str:
        return f"<MacrometaTransport {self.settings.rest_url} fabric={self.settings.fabric!r}>"

    # ------------------------------------------------------------------------- admin

    def _run(self, operation: admin.Operation[T]) -> T:
        """Run an ``admin`` operation, making each REST call it asks for."""
        rest = self._live()
        return admin.run(
            operation,
            lambda c: rest.call(
                c.method,
                c.path,
                params=c.params,
                stream=c.stream,
                subscription=c.subscription,
                on_404=c.on_404,
            ),
        )

    def create_stream(self, stream: StreamRef) -> None:
        self._run(admin.create_stream(self.settings.fabric, stream))

    def delete_stream(self, stream: StreamRef, *, force: bool) -> None:
        self._run(admin.delete_stream(self.settings.fabric, stream, force=force))

    def list_streams(self, *, local: bool | None) -> list[StreamRef]:
        return self._run(admin.list_streams(self.settings.fabric, local=local))

    def backlog(self, stream: StreamRef) -> int:
        return self._run(admin.backlog(self.settings.fabric, stream))

    def stats(self, stream: StreamRef) -> dict[str, Any]:
        return self._run(admin.stats(self.settings.fabric, stream))

    def subscriptions(self, stream: StreamRef) -> list[SubscriptionInfo]:
        return self._run(admin.subscriptions(self.settings.fabric, stream))

    def delete_subscription(self, stream: StreamRef, subscription: str) -> None:
        self._run(admin.delete_subscription(self.settings.fabric, stream, subscription))

    def clear_backlog(self, stream: StreamRef, subscription: str | None) -> None:
        self._run(admin.clear_backlog(self.settings.fabric, stream, subscription))

    # ------------------------------------------------------------------------- links

    def _connector(
        self, kind: str, stream: StreamRef, params: dict[str, str], subscription: str = ""
    ) -> Connector:
        path = admin.session_path(kind, self.tenant, self.settings.fabric, stream, subscription)
        base = make_ws_base(self.settings, stream.local, self._local_dc)
        return Connector(
            self.settings,
            self.rest,
            base,
            path,
            params,
            stream=stream.name,
            subscription=subscription,
        )

    def _local_dc(self) -> str:
        if self._dc_url is None:
            self._dc_url = self._live().local_dc_url()
        return self._dc_url

    def _require(self, stream: StreamRef) -> None:
        self._run(admin.require(self.settings.fabric, stream))

    def _track(self, link: Link) -> None:
        with self._lock:
            if self._closed:
                link.close()
                raise Closed("client is closed")
            self._links.add(link)

    def open_producer(self, stream: StreamRef, options: ProducerOptions) -> MacrometaProducer:
        self._require(stream)
        params = admin.producer_query(options)
        link = MacrometaProducer(self._connector("producer", stream, params), stream, options)
        self._track(link)
        return link

    def open_consumer(
        self, stream: StreamRef, subscription: str, options: ConsumerOptions
    ) -> MacrometaConsumer:
        refusal = admin.consumer_refusal(subscription, options, extensions=self.settings.extensions)
        if refusal is not None:
            raise refusal
        self._require(stream)
        params = wire.consumer_query(options, local=stream.local)
        link = MacrometaConsumer(
            self._connector("consumer", stream, params, subscription),
            stream,
            subscription,
            pull=options.pull_mode,
        )
        self._track(link)
        return link

    def open_reader(self, stream: StreamRef, options: ReaderOptions) -> MacrometaConsumer:
        self._require(stream)
        params = wire.reader_query(stream.name, options)
        link = MacrometaConsumer(self._connector("reader", stream, params), stream, None)
        self._track(link)
        return link

    # ------------------------------------------------------------------------- close

    def _live(self) -> Rest:
        if self._closed:
            raise Closed("client is closed")
        return self.rest

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            links = list(self._links)
        for link in links:
            link.close()
        self.rest.close()
