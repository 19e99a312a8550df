"""The asyncio consumer and reader: receive deliveries, decode them, ack or nack."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable

from streamfw.aio.message import AsyncAcknowledger, Message
from streamfw.aio.spi import AsyncConsumerLink
from streamfw.consumer_core import ConsumerCore, check_max_messages, message_id_of
from streamfw.errors import Closed, DecodeError
from streamfw.message import Delivery, MessageId

# May return an awaitable: it is awaited.
OnDecodeError = Callable[[DecodeError[Message]], object]


class Consumer(ConsumerCore[AsyncConsumerLink, Message]):
    """Receives from one subscription (or, as a reader, from a position in a stream).

    ``await receive(timeout)`` returns the next ``Message`` or ``None`` once ``timeout``
    seconds pass; ``async for`` waits until the consumer is closed. Decoding follows the sync
    ``Consumer``'s rules: a message that does not decode raises ``DecodeError`` carrying it as
    ``err.undecodable`` (a ``streamfw.aio.Message``, to ack or nack), and the consumer stays
    usable; ``async for`` goes on with the next message (see ``messages``).

    Cancelling a ``receive`` (``task.cancel()``, ``asyncio.timeout``) takes nothing: a message
    arriving meanwhile waits for the next ``receive``.
    """

    _KIND = "aio.Consumer"

    def _setup(self) -> None:
        self._acker: AsyncAcknowledger = self if self._acks_through_consumer else self._link
        self._kept: list[Message] = []  # taken by a cancelled receive_many, for the next one

    async def receive(self, timeout: float | None = None) -> Message | None:
        self._check_open()
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
        check_max_messages(max_messages)
        self._raise_deferred()
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
        message_id = message_id_of(message)
        await self._link.ack(message_id)
        self._acked(message_id)

    async def nack(self, message: Message | MessageId) -> None:
        message_id = message_id_of(message)
        await self._link.nack(message_id)
        self._nacked(message_id)

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

    def _message(self, d: Delivery, value: object) -> Message:
        return Message(*self._fields(d, value), acker=self._acker)


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
