"""The asyncio consumer and reader: receive deliveries, decode them, ack or nack."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable

from streamfw.aio.message import AsyncAcknowledger, Message
from streamfw.aio.spi import AsyncConsumerLink
from streamfw.api import StreamRef
from streamfw.codec import Pipeline
from streamfw.errors import Closed, ConfigError, DecodeError
from streamfw.message import Delivery, MessageId
from streamfw.plugins import NO_HOOKS, MessageHooks

OnDecodeError = Callable[[DecodeError], object]  # may return an awaitable: it is awaited


class Consumer:
    """Receives from one subscription (or, as a reader, from a position in a stream).

    ``await receive(timeout)`` returns the next ``Message`` or ``None`` once ``timeout``
    seconds pass; ``async for`` waits until the consumer is closed. Decoding follows the sync
    ``Consumer``'s rules: a message that does not decode raises ``DecodeError`` carrying it as
    ``err.undecodable`` (a ``streamfw.aio.Message``, to ack or nack), and the consumer stays
    usable; ``async for`` goes on with the next message (see ``messages``).

    Cancelling a ``receive`` (``task.cancel()``, ``asyncio.timeout``) takes nothing: a message
    arriving meanwhile waits for the next ``receive``.
    """

    def __init__(
        self,
        link: AsyncConsumerLink,
        stream: StreamRef,
        subscription: str | None,
        pipeline: Pipeline,
        hooks: MessageHooks = NO_HOOKS,
    ) -> None:
        self._link = link
        self._pipeline = pipeline
        self.stream = stream
        self.subscription = subscription
        self._closed = False
        self._hooks = hooks
        # Looked up once: with no hook plugin, messages ack straight through the link.
        self._after_receive = hooks.after_receive
        self._acker: AsyncAcknowledger = self if hooks.on_ack or hooks.on_nack else link
        self._deferred_error: DecodeError | None = None  # receive_many's, for its next call
        self._kept: list[Message] = []  # taken by a cancelled receive_many, for the next one

    @property
    def transport(self) -> str:
        """The URL scheme of the transport this consumer receives over (``loopback``, ...)."""
        return self._hooks.transport

    @property
    def max_message_size(self) -> int:
        """The largest payload, and codec stage output, this consumer decodes (bytes)."""
        return self._pipeline.max_size

    async def receive(self, timeout: float | None = None) -> Message | None:
        if self._closed:
            raise Closed(f"{self._what()} is closed")
        delivery = await self._link.receive(timeout)
        if delivery is None:
            return None
        return self._decode(delivery)

    async def receive_many(self, max_messages: int, timeout: float | None = None) -> list[Message]:
        """Up to ``max_messages`` messages: as soon as that many came, or once ``timeout`` passed.

        The sync ``Consumer.receive_many``'s rules: an empty list when nothing came in time; a
        pull-mode consumer (``pull_mode=True``) first asks the broker for ``max_messages``
        (less what it asked for before and has not received yet); a message that does not
        decode ends the batch (raised at once if it is the first, otherwise by the next call).
        Cancelled, it keeps what it took for the next call, so nothing is lost.

        Raises:
            ConfigError: ``max_messages`` is not an int >= 1.
        """
        if not isinstance(max_messages, int) or isinstance(max_messages, bool) or max_messages < 1:
            raise ConfigError(f"max_messages must be an int >= 1, got {max_messages!r:.80}")
        deferred, self._deferred_error = self._deferred_error, None
        if deferred is not None:
            raise deferred
        request = getattr(self._link, "request", None)  # pull mode: ask for what we want
        if request is not None and not self._closed:
            await request(max_messages)
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        batch, self._kept = self._kept, []
        try:
            while len(batch) < max_messages:
                left = None if end is None else max(0.0, end - loop.time())
                try:
                    message = await self.receive(left)
                except DecodeError as exc:
                    if not batch:
                        raise
                    self._deferred_error = exc
                    break
                if message is None:
                    break
                batch.append(message)
        except asyncio.CancelledError:
            self._kept = batch  # taken already: the next receive_many returns them first
            raise
        return batch

    async def ack(self, message: Message | MessageId) -> None:
        message_id = message.id if isinstance(message, Message) else message
        await self._link.ack(message_id)
        if self._hooks.on_ack is not None:
            self._hooks.on_ack(consumer=self, message_id=message_id)

    async def nack(self, message: Message | MessageId) -> None:
        message_id = message.id if isinstance(message, Message) else message
        await self._link.nack(message_id)
        if self._hooks.on_nack is not None:
            self._hooks.on_nack(consumer=self, message_id=message_id)

    async def close(self) -> None:
        """Detach; unacked messages go back to the subscription. Safe to call twice."""
        if not self._closed:
            self._closed = True
            await asyncio.shield(self._link.close())

    def messages(self, on_decode_error: OnDecodeError | None = None) -> MessageIterator:
        """Iterate over messages until this consumer is closed (``async for`` too).

        Args:
            on_decode_error: called with the ``DecodeError`` of each message that does not
                decode (and awaited if it returns an awaitable); the iteration then goes on.
                Left ``None``, ``__anext__`` raises the ``DecodeError`` and the same iterator
                goes on with the next message when called again.
        """
        return MessageIterator(self, on_decode_error)

    def __aiter__(self) -> MessageIterator:
        return MessageIterator(self, None)

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<aio.Consumer {self._what()} {state}>"

    def _what(self) -> str:
        if self.subscription is None:
            return f"reader on stream {self.stream.name!r}"
        return f"consumer of {self.subscription!r} on stream {self.stream.name!r}"

    def _decode(self, d: Delivery) -> Message:
        try:
            value = self._pipeline.decode(d.payload, d.properties)
        except DecodeError as exc:
            undecodable = self._message(d, None)
            if self._after_receive is not None:
                self._after_receive(consumer=self, message=undecodable)
            raise DecodeError(
                f"{self._what()}: {d.message_id}: {exc}",
                undecodable=undecodable,  # type: ignore[arg-type]  # the aio Message
            ) from exc
        message = self._message(d, value)
        if self._after_receive is not None:
            self._after_receive(consumer=self, message=message)
        return message

    def _message(self, d: Delivery, value: object) -> Message:
        return Message(
            d.message_id,
            value,
            d.payload,
            d.properties,
            d.key,
            d.publish_time,
            d.redelivery_count,
            self.stream.name,
            self.subscription,
            acker=self._acker,
        )


class MessageIterator(AsyncIterator[Message]):
    """Messages of one consumer, one per ``__anext__``, until the consumer is closed.

    Like the sync ``MessageIterator``, it survives an exception: a ``DecodeError`` is about
    one message, and the next call takes the next one. Other errors (``ConnectionLost``,
    ``StreamDeleted``, ...) are raised too; the application's own ``close()`` ends it.
    """

    def __init__(self, consumer: Consumer, on_decode_error: OnDecodeError | None) -> None:
        self._consumer = consumer
        self._on_decode_error = on_decode_error

    def __aiter__(self) -> MessageIterator:
        return self

    async def __anext__(self) -> Message:
        while True:
            try:
                message = await self._consumer.receive(None)
            except Closed:
                raise StopAsyncIteration from None
            except DecodeError as exc:
                if self._on_decode_error is None:
                    raise
                outcome = self._on_decode_error(exc)
                if inspect.isawaitable(outcome):
                    await outcome
                continue
            if message is not None:
                return message
