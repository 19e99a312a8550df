"""What the sync and the asyncio client share, free of I/O: checking ``connect()``'s
arguments, codec pipelines and message hooks for producers and consumers, and the names used
in errors and reprs.

``streamfw.client`` and ``streamfw.aio.client`` subclass ``ClientCore`` and ``StreamCore`` and
add only their I/O: admin calls made blocking or awaited, and links opened so.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

from streamfw.api import StreamRef, check_name
from streamfw.codec import (
    DEFAULT_MAX_CODEC_STAGES,
    DEFAULT_MAX_MESSAGE_SIZE,
    CodecRegistry,
    Pipeline,
)
from streamfw.errors import Closed, ConfigError
from streamfw.options import check_limit
from streamfw.plugins import MessageHooks, PluginSet

T = TypeVar("T")  # the transport: a sync ``Transport`` or an ``AsyncTransport``
C = TypeVar("C", bound="ClientCore[Any]")


URL_ENV = "STREAMFW_URL"  # connect()'s URL when none is given, as for the CLI's --url
DEFAULT_URL = "loopback://"


def connect_url(url: str | None) -> str:
    """``connect()``'s URL: the one given, else ``$STREAMFW_URL`` if set and not empty, else
    ``loopback://`` (the same precedence for the sync and the asyncio client and the CLI)."""
    if url is None:
        return os.environ.get(URL_ENV) or DEFAULT_URL
    return url


def check_connect(url: object, max_message_size: int, max_codec_stages: int) -> str:
    """The URL's scheme, once ``connect()``'s URL and codec limits are checked."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"URL must look like 'scheme://...', e.g. 'loopback://', got {url!r}")
    check_limit("max_message_size", max_message_size)
    check_limit("max_codec_stages", max_codec_stages)
    return urlsplit(url).scheme


class ClientCore(Generic[T]):
    """The pure part of a client of transport type ``T``.

    ``max_message_size`` and ``max_codec_stages`` are the codec limits described in
    ``streamfw.connect()``.
    """

    _KIND: ClassVar[str] = "Client"  # the repr's name of the class

    def __init__(
        self,
        transport: T,
        codecs: CodecRegistry,
        url: str,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_codec_stages: int = DEFAULT_MAX_CODEC_STAGES,
        plugins: PluginSet | None = None,  # whose message hooks producers and consumers call
    ) -> None:
        self.transport = transport
        self.plugins = plugins
        self.codecs = codecs
        self.url = url
        self.max_message_size = check_limit("max_message_size", max_message_size)
        self.max_codec_stages = check_limit("max_codec_stages", max_codec_stages)
        self._closed = False

    def __repr__(self) -> str:
        # Only the scheme and host: URLs may carry credentials in their query.
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"<{self._KIND} {parts.scheme}://{parts.hostname or ''}{port}{parts.path}>"

    def _transport(self) -> T:
        if self._closed:
            raise Closed("client is closed")
        return self.transport

    def _hooks(self) -> MessageHooks:
        scheme = urlsplit(self.url).scheme
        return self.plugins.message_hooks(scheme) if self.plugins else MessageHooks(scheme)

    def _pipeline(self, codec: str, max_message_size: int | None = None) -> Pipeline:
        size = self.max_message_size if max_message_size is None else max_message_size
        return self.codecs.pipeline(codec, max_size=size, max_stages=self.max_codec_stages)


class StreamCore(Generic[C]):
    """The pure part of a stream handle on a client of type ``C``."""

    _KIND: ClassVar[str] = "Stream"  # the repr's name of the class

    def __init__(self, client: C, ref: StreamRef) -> None:
        self._client = client
        self.ref = ref

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def local(self) -> bool:
        return self.ref.local

    def __repr__(self) -> str:
        return f"<{self._KIND} {self.ref}>"

    def _consumer_pipeline(
        self, subscription: str, codec: str, max_message_size: int | None
    ) -> Pipeline:
        """``consumer()``'s pipeline, once the subscription's name is checked.

        The options are built by the public method itself (``options_from_keywords``), so
        that a deprecation warning points at the line that called it.
        """
        check_name("subscription", subscription)
        return self._client._pipeline(codec, max_message_size)
