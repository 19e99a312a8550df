"""``connect()``, the ``Client`` and the ``Stream`` handle: the public entry points."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamfw.api import StreamRef, SubscriptionInfo, Transport, TransportConfig, check_name
from streamfw.client_core import ClientCore, StreamCore, check_connect, connect_url
from streamfw.codec import AUTO, DEFAULT_MAX_CODEC_STAGES, DEFAULT_MAX_MESSAGE_SIZE
from streamfw.consumer import Consumer
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
from streamfw.producer import Producer

if TYPE_CHECKING:
    # PEP 692 keywords; typing.Unpack is 3.11+, and annotations are never evaluated at run time.
    from typing_extensions import Unpack


def connect(
    url: str | None = None,
    *,
    plugins: PluginSet | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_codec_stages: int = DEFAULT_MAX_CODEC_STAGES,
    **options: Any,
) -> Client:
    """Open a client; the URL scheme picks the transport plugin.

    Args:
        url: ``scheme://...``; the scheme names the transport (``loopback``, or a plugin's).
            Default: ``$STREAMFW_URL`` when set and not empty (as for the CLI's ``--url``),
            else ``"loopback://"``. A URL given here always wins over the variable.
        plugins: the plugins to use; by default those installed, discovered once per process
            (``streamfw.plugins.installed()``).
        max_message_size: the largest message payload, in bytes, this client sends or
            decodes, and the largest output of any codec stage (so a compressed payload cannot
            inflate past it). Default 5,242,880 (5 MiB), Pulsar's ``maxMessageSize``. A larger
            value is refused by ``send`` with ``EncodeError`` before anything is sent; on
            receipt, with ``DecodeError`` carrying the message. Consumers and readers may set
            their own.
        max_codec_stages: the most stages a codec spec, or the ``streamfw-codec`` tag of a
            received message, may name (value codec included). Default 8.
        **options: go to the transport (e.g. an ``api_key=``); never printed.

    Raises:
        ConfigError: a bad URL or option.
        PluginError: no transport for the URL's scheme.
    """
    url = connect_url(url)
    scheme = check_connect(url, max_message_size, max_codec_stages)
    found = plugins or installed()
    spec = found.transport(scheme)
    transport = spec.factory(TransportConfig(url, options))
    return Client(
        transport,
        found.codecs(),
        url,
        max_message_size=max_message_size,
        max_codec_stages=max_codec_stages,
        plugins=found,
    )


class Client(ClientCore[Transport]):
    """A connection to one broker. Context manager; ``close()`` is idempotent.

    ``max_message_size`` and ``max_codec_stages`` are the codec limits described in
    ``connect()``.
    """

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


class Stream(StreamCore[Client]):
    """Admin operations on one stream, and the producers and consumers that use it."""

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

    def producer(self, *, codec: str = AUTO, **options: Unpack[ProducerOptionsDict]) -> Producer:
        """Open a producer on this stream.

        A value whose payload, or the output of any of its codec stages, is larger than the
        client's ``max_message_size`` is refused with ``MessageTooLarge`` (an ``EncodeError``)
        before anything is sent.

        Args:
            codec: the codec spec values are encoded with (e.g. ``"json+zlib"``).
            **options: the fields of ``ProducerOptions`` (``name``, ``max_pending``,
                ``send_timeout``), described and defaulted there.

        Raises:
            ConfigError: an unknown option or a value that cannot be used.
        """
        opened = options_from_keywords(ProducerOptions, options)
        pipeline = self._client._pipeline(codec)
        link = self._client._transport().open_producer(self.ref, opened)
        return Producer(link, self.ref, pipeline, opened, self._client._hooks())

    def consumer(
        self,
        subscription: str,
        *,
        codec: str = AUTO,
        max_message_size: int | None = None,
        **options: Unpack[ConsumerOptionsDict],
    ) -> Consumer:
        """Attach to a durable subscription (created at ``initial_position`` if new).

        Args:
            subscription: the durable subscription's name.
            codec: decodes messages that carry no ``streamfw-codec`` tag.
            max_message_size: bytes; default: the client's (5 MiB unless ``connect()`` was
                given another). It bounds the payload and every codec stage's output: a
                message past it, like any message that does not decode, raises
                ``DecodeError`` carrying the message, to ack or nack.
            **options: the fields of ``ConsumerOptions`` (``name``, ``type``,
                ``initial_position``, ``receiver_queue_size``, ``ack_timeout``,
                ``nack_delay``...), described and defaulted there. ``consumer_name=`` is the
                deprecated spelling of ``name=``.

        Raises:
            SubscriptionBusy: the subscription is exclusive and taken.
            ConfigError: an unknown option or a value that cannot be used.
        """
        opened = options_from_keywords(ConsumerOptions, options)
        pipeline = self._consumer_pipeline(subscription, codec, max_message_size)
        link = self._client._transport().open_consumer(self.ref, subscription, opened)
        return Consumer(link, self.ref, subscription, pipeline, self._client._hooks())

    def reader(
        self,
        start: ReaderStart | None = None,
        /,
        *,
        codec: str = AUTO,
        max_message_size: int | None = None,
        **options: Unpack[ReaderOptionsDict],
    ) -> Consumer:
        """A non-durable reader from ``earliest``, ``latest`` or just after a message id.

        Args:
            start: where to start (``ReaderOptions.start``; None or left out: its default,
                ``latest``). May be given as a keyword too.
            codec: as for ``consumer()``.
            max_message_size: as for ``consumer()``.
            **options: the fields of ``ReaderOptions`` (``receiver_queue_size``, ``name``),
                described and defaulted there.

        Raises:
            ConfigError: an unknown option or a value that cannot be used.
        """
        start_given = {} if start is None else {"start": start}
        opened = options_from_keywords(ReaderOptions, options, positional=start_given)
        pipeline = self._client._pipeline(codec, max_message_size)
        link = self._client._transport().open_reader(self.ref, opened)
        return Consumer(link, self.ref, None, pipeline, self._client._hooks())
