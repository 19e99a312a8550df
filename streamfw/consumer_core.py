"""What the sync and the asyncio consumer share, free of I/O: decoding a ``Delivery`` into a
message, the hook calls around it, and the names used in errors and reprs.

``streamfw.consumer.Consumer`` and ``streamfw.aio.Consumer`` subclass ``ConsumerCore`` and add
only their I/O (a blocking or an awaited ``receive``, ``ack``, ``close``) and the message class
they make (``_MAKE``, its ``message_maker``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from streamfw.api import StreamRef
from streamfw.codec import Pipeline
from streamfw.endpoint_core import EndpointCore
from streamfw.errors import ConfigError, DecodeError
from streamfw.message import Delivery, MessageId, ReceivedMessage
from streamfw.plugins import NO_HOOKS, MessageHooks

L = TypeVar("L")  # the link: a sync ``ConsumerLink`` or an ``AsyncConsumerLink``
M = TypeVar("M", bound=ReceivedMessage)


def message_id_of(message: ReceivedMessage | MessageId) -> MessageId:
    """The id to ack or nack: ``consumer.ack`` takes a message or its id."""
    return message if isinstance(message, MessageId) else message.id


def check_max_messages(max_messages: object) -> int:
    """``max_messages`` of ``receive_many`` if it is an int >= 1, else ``ConfigError``."""
    if not isinstance(max_messages, int) or isinstance(max_messages, bool) or max_messages < 1:
        raise ConfigError(f"max_messages must be an int >= 1, got {max_messages!r:.80}")
    return max_messages


class ConsumerCore(EndpointCore[L], Generic[L, M]):
    """The pure part of a consumer or reader (``subscription=None``) on a link of type ``L``,
    making messages of type ``M``. A subclass adds its own state in ``_setup``."""

    _KIND: ClassVar[str] = "Consumer"  # the repr's name of the class
    # The constructor of the subclass's message class: message_maker(ItsMessage).
    _MAKE: ClassVar[Callable[[str, str | None, Any, Delivery, Any], Any]]
    _acker: Any  # set by the subclass's _setup: this consumer, or its link (sync or asyncio)

    def __init__(
        self,
        link: L,
        stream: StreamRef,
        subscription: str | None,
        pipeline: Pipeline,
        hooks: MessageHooks = NO_HOOKS,
    ) -> None:
        super().__init__(link, stream, pipeline, hooks)
        self.subscription = subscription
        self._deferred_error: DecodeError[M] | None = None  # receive_many's, for its next call
        # Looked up once: with no hook plugin, nothing is called per message.
        self._after_receive = hooks.after_receive
        # With no ack hook, messages ack straight through the link instead of this consumer.
        self._acks_through_consumer = bool(hooks.on_ack or hooks.on_nack)
        self._setup()  # sets _acker: this consumer (for its ack hooks) or the link
        # What _decode makes each message with: the subclass's constructor, this consumer's
        # parts bound once (it runs for every message).
        self._make: Callable[[Delivery, Any], M] = functools.partial(
            type(self)._MAKE, stream.name, subscription, self._acker
        )

    @property
    def max_message_size(self) -> int:
        """The largest payload, and codec stage output, this consumer decodes (bytes)."""
        return self._pipeline.max_size

    def _raise_deferred(self) -> None:
        """Raise the ``DecodeError`` that ended the last ``receive_many`` batch, if any."""
        deferred, self._deferred_error = self._deferred_error, None
        if deferred is not None:
            raise deferred

    def _acked(self, message_id: MessageId) -> None:
        """The ``streamfw_on_ack`` hook, after the link acked (a reader acks nothing)."""
        if self._hooks.on_ack is not None and self.subscription is not None:
            self._hooks.on_ack(consumer=self, message_id=message_id)

    def _nacked(self, message_id: MessageId) -> None:
        if self._hooks.on_nack is not None and self.subscription is not None:
            self._hooks.on_nack(consumer=self, message_id=message_id)

    def _what(self) -> str:
        if self.subscription is None:
            return f"reader on stream {self.stream.name!r}"
        return f"consumer of {self.subscription!r} on stream {self.stream.name!r}"

    def _decode(self, d: Delivery) -> M:
        try:
            value = self._pipeline.decode(d.payload, d.properties)
        except DecodeError as exc:
            undecodable = self._make(d, None)
            if self._after_receive is not None:
                self._after_receive(consumer=self, message=undecodable)
            raise DecodeError(
                f"{self._what()}: {d.message_id}: {exc}", undecodable=undecodable
            ) from exc
        message = self._make(d, value)
        if self._after_receive is not None:
            self._after_receive(consumer=self, message=message)
        return message
