"""``connect()``, the ``Client`` and the ``Stream`` handle: the public entry points."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from streamfw.api import (
    ConsumerOptions,
    InitialPosition,
    ProducerOptions,
    ReaderOptions,
    StreamRef,
    SubscriptionInfo,
    SubscriptionType,
    Transport,
    TransportConfig,
    check_name,
)
from streamfw.codec import AUTO, CodecRegistry
from streamfw.consumer import Consumer
from streamfw.errors import AlreadyExists, Closed, ConfigError
from streamfw.message import MessageId
from streamfw.plugins import PluginSet, discover
from streamfw.producer import Producer


def connect(
    url: str = "loopback://", *, plugins: PluginSet | None = None, **options: Any
) -> Client:
    """Open a client; the URL scheme picks the transport plugin.

    ``options`` go to the transport (e.g. ``api_key=`` for macrometa) and are never printed.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"URL must look like 'scheme://...', e.g. 'loopback://', got {url!r}")
    scheme = urlsplit(url).scheme
    found = plugins or discover()
    spec = found.transport(scheme)
    transport = spec.factory(TransportConfig(url, options))
    return Client(transport, found.codecs(), url)


class Client:
    """A connection to one broker. Context manager; ``close()`` is idempotent."""

    def __init__(self, transport: Transport, codecs: CodecRegistry, url: str) -> None:
        self.transport = transport
        self.codecs = codecs
        self.url = url
        self._closed = False

    def stream(self, name: str, *, local: bool = False) -> Stream:
        """A handle on a stream (global unless ``local``); nothing is created yet."""
        return Stream(self, StreamRef(name, local))

    def streams(self, *, local: bool | None = None) -> list[Stream]:
        """Existing streams: all, or only local (``True``) / global (``False``) ones."""
        return [Stream(self, ref) for ref in self._transport().list_streams(local=local)]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        # Only the scheme and host: URLs may carry credentials in their query.
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"<Client {parts.scheme}://{parts.hostname or ''}{port}{parts.path}>"

    def _transport(self) -> Transport:
        if self._closed:
            raise Closed("client is closed")
        return self.transport


class Stream:
    """Admin operations on one stream, and the producers and consumers that use it."""

    def __init__(self, client: Client, ref: StreamRef) -> None:
        self._client = client
        self.ref = ref

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def local(self) -> bool:
        return self.ref.local

    def create(self, *, exist_ok: bool = False) -> Stream:
        try:
            self._client._transport().create_stream(self.ref)
        except AlreadyExists:
            if not exist_ok:
                raise
        return self

    def exists(self) -> bool:
        return self.ref in self._client._transport().list_streams(local=self.ref.local)

    def delete(self, *, force: bool = False) -> None:
        """Delete; refused with InUse while consumers or producers are attached unless forced."""
        self._client._transport().delete_stream(self.ref, force=force)

    def backlog(self) -> int:
        return self._client._transport().backlog(self.ref)

    def stats(self) -> dict[str, Any]:
        return self._client._transport().stats(self.ref)

    def subscriptions(self) -> list[SubscriptionInfo]:
        return self._client._transport().subscriptions(self.ref)

    def delete_subscription(self, name: str) -> None:
        self._client._transport().delete_subscription(self.ref, check_name("subscription", name))

    def clear_backlog(self, subscription: str | None = None) -> None:
        self._client._transport().clear_backlog(self.ref, subscription)

    def producer(
        self,
        *,
        codec: str = AUTO,
        name: str | None = None,
        max_pending: int = 1000,
        send_timeout: float = 30.0,
    ) -> Producer:
        pipeline = self._client.codecs.pipeline(codec)
        options = ProducerOptions(name, max_pending, send_timeout)
        link = self._client._transport().open_producer(self.ref, options)
        return Producer(link, self.ref, pipeline, options)

    def consumer(
        self,
        subscription: str,
        *,
        type: SubscriptionType = "exclusive",
        initial_position: InitialPosition = "latest",
        receiver_queue_size: int = 1000,
        consumer_name: str | None = None,
        ack_timeout: float | None = None,
        nack_delay: float = 60.0,
        codec: str = AUTO,
    ) -> Consumer:
        """Attach to a durable subscription (created at ``initial_position`` if new).

        Raises SubscriptionBusy if the subscription is exclusive and taken.
        """
        check_name("subscription", subscription)
        pipeline = self._client.codecs.pipeline(codec)
        options = ConsumerOptions(
            type, initial_position, receiver_queue_size, consumer_name, ack_timeout, nack_delay
        )
        link = self._client._transport().open_consumer(self.ref, subscription, options)
        return Consumer(link, self.ref, subscription, pipeline)

    def reader(
        self,
        start: Literal["earliest", "latest"] | MessageId = "latest",
        *,
        receiver_queue_size: int = 1000,
        name: str | None = None,
        codec: str = AUTO,
    ) -> Consumer:
        """A non-durable reader from ``earliest``, ``latest`` or just after a message id."""
        if not isinstance(start, MessageId) and start not in ("earliest", "latest"):
            raise ConfigError(f"start must be 'earliest', 'latest' or a MessageId, got {start!r}")
        pipeline = self._client.codecs.pipeline(codec)
        options = ReaderOptions(start, receiver_queue_size, name)
        link = self._client._transport().open_reader(self.ref, options)
        return Consumer(link, self.ref, None, pipeline)

    def __repr__(self) -> str:
        return f"<Stream {self.ref}>"
