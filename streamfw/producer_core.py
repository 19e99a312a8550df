"""What the sync and the asyncio producer share, free of I/O: building an ``Envelope`` from a
value, the ``OutgoingMessage`` the ``streamfw_send`` hooks see and the ``Envelope`` they hand
back, and the names used in errors and reprs.

``streamfw.producer.Producer`` and ``streamfw.aio.Producer`` subclass ``ProducerCore`` and add
only their I/O: handing an envelope to a link and waiting for its confirmation (blocking on a
``concurrent.futures.Future``, or awaiting an ``asyncio.Future``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from streamfw.api import StreamRef
from streamfw.codec import CODEC_PROPERTY, Pipeline
from streamfw.endpoint_core import EndpointCore
from streamfw.errors import ConfigError, PluginError, SendTimeout
from streamfw.message import Envelope, MessageId, OutgoingMessage, Properties
from streamfw.options import ProducerOptions
from streamfw.plugins import NO_HOOKS, MessageHooks

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures as cf

F = TypeVar("F", bound="cf.Future[MessageId] | asyncio.Future[MessageId]")
L = TypeVar("L")  # the link: a sync ``ProducerLink`` or an ``AsyncProducerLink``


class ProducerCore(EndpointCore[L]):
    """The pure part of a producer on one stream, over a link of type ``L``. A subclass adds
    its own state in ``_setup``."""

    _KIND: ClassVar[str] = "Producer"  # the repr's name of the class

    def __init__(
        self,
        link: L,
        stream: StreamRef,
        pipeline: Pipeline,
        options: ProducerOptions,
        hooks: MessageHooks = NO_HOOKS,
    ) -> None:
        super().__init__(link, stream, pipeline, hooks)
        self._options = options
        self._tag_only: dict[str, Properties] = {}
        self._send_hook = hooks.send  # looked up once: None costs nothing per message
        self._setup()

    @property
    def codec(self) -> str:
        return self._pipeline.name

    def _what(self) -> str:
        return f"producer on stream {self.stream}"

    def _describe(self) -> str:
        return f"stream={self.stream.name!r} codec={self.codec!r}"

    def _envelope(
        self, value: Any, properties: Mapping[str, str] | None, key: str | None
    ) -> Envelope:
        if key is not None and not isinstance(key, str):
            raise ConfigError(f"key must be a str or None, got {type(key).__name__}")
        if properties and CODEC_PROPERTY in properties:
            raise ConfigError(f"property {CODEC_PROPERTY!r} is reserved for the codec pipeline")
        payload, tag = self._pipeline.encode(value)
        if not properties:  # the common case: one immutable Properties per tag, reused
            props = self._tag_only.get(tag)
            if props is None:
                props = self._tag_only[tag] = Properties({CODEC_PROPERTY: tag})
            if key is None and payload.__class__ is bytes:  # nothing left to check
                return Envelope.trusted(payload, props)
            return Envelope(payload, props, key)
        try:
            return Envelope(payload, Properties({**properties, CODEC_PROPERTY: tag}), key)
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc

    def _outgoing(self, envelope: Envelope) -> OutgoingMessage:
        """What the ``streamfw_send`` hooks see of ``envelope`` (properties they may change)."""
        props = envelope.properties
        return OutgoingMessage(
            self.stream.name, envelope.payload, dict(props), envelope.key, props[CODEC_PROPERTY]
        )

    def _hooked_envelope(self, message: OutgoingMessage) -> Envelope:
        """What to send of the message the ``streamfw_send`` hooks made, checked as a user's."""
        props = message.properties
        if props.get(CODEC_PROPERTY) != message.codec:
            raise PluginError(
                f"a streamfw_send hook changed the reserved property {CODEC_PROPERTY!r}"
            )
        try:
            return Envelope(message.payload, Properties(props), message.key)
        except TypeError as exc:
            raise PluginError(f"a streamfw_send hook wrote bad properties: {exc}") from exc

    def _send_timeout(self, wait: float | None, future: F) -> SendTimeout[F]:
        """The error of a ``send`` whose message left but was not confirmed within ``wait``."""
        return SendTimeout(
            f"stream {self.stream}: sent, but not confirmed within {wait:g} s; it stays"
            " pending and may still be stored (exc.future tells)",
            future=future,
        )
