"""The asyncio consumer and reader: receive deliveries, decode them, ack or nack."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

from streamfw.aio.message import AsyncAcknowledger, Message
from streamfw.aio.spi import AsyncConsumerLink
from streamfw.consumer_core import ConsumerCore, check_max_messages, message_id_of
from streamfw.errors import Closed, DecodeError
from streamfw.message import Delivery, MessageId, message_maker

# May return an awaitable: it is awaited.
OnDecodeError = Callable[[DecodeError[Message]], object]

# A link that hands out a ready delivery without suspending (AsyncInlineConsumerLink, such as
# loopback's) lets a task that always finds a message ready run without ever giving the event
# loop back, starving every other task. After this many such receives in a row, the next
# receive first yields to the loop once (``await asyncio.sleep(0)``, before taking anything,
# so cancelling it there takes nothing). The producer's INLINE_SENDS_PER_YIELD twin.
READY_RECEIVES_PER_YIELD = 16


class Consumer(ConsumerCore[AsyncConsumerLink, Message]):
    """Receives from one subscription (or, as a reader, from a position in a stream).

    ``await receive(timeout)`` returns the next ``Message`` or ``None`` once ``timeout``
    seconds pass; ``async for`` waits until the consumer is closed. Decoding follows the sync
    ``Consumer``'s rules: a message that does not decode raises ``DecodeError`` carrying it as
    ``err.undecodable`` (a ``streamfw.aio.Message``, to ack or nack), and the consumer stays
    usable; ``async for`` goes on with the next message (see ``messages``).

    Cancelling a ``receive`` (``task.cancel()``, ``asyncio.timeout``) takes nothing: a message
    arriving meanwhile waits for the next ``receive``.

    A message the link holds ready (loopback) is received without suspending the caller, but
    every ``READY_RECEIVES_PER_YIELD``-th such receive in a row yields to the event loop first,
    so a consumer that always finds a message leaves other tasks their turn. One that finds
    none gives the loop one turn before it waits (a producer task may be about to send).
    """

    _KIND = "aio.Consumer"
    _MAKE = message_maker(Message)

    def _setup(self) -> None:
        self._acker: AsyncAcknowledger = self if self._acks_through_consumer else self._link
        self._kept: list[Message] = []  # taken by a cancelled receive_many, for the next one
        # An AsyncInlineConsumerLink answers at once when it can: no coroutine of the link's.
        self._receive_nowait: Callable[[], Delivery | None] | None = _optional(
            self._link, "receive_nowait"
        )
        self._ack_nowait: Callable[[MessageId], None] | None = _optional(self._link, "ack_nowait")
        self._nack_nowait: Callable[[MessageId], None] | None = _optional(self._link, "nack_nowait")
        self._ready_receives = 0  # receives in a row that found a message ready

    async def receive(self, timeout: float | None = None) -> Message | None:
        self._check_open()
        receive_nowait = self._receive_nowait
        if receive_nowait is not None:
            if self._ready_receives >= READY_RECEIVES_PER_YIELD:
                await self._yield_before_taking()
            delivery = receive_nowait()
            if delivery is None and (timeout is None or timeout > 0):
                # Before waiting, one turn for the other tasks: a producer on this loop that
                # yielded is about to hand messages over, and a turn costs less than arming a
                # wake-up (the two then take turns without one).
                loop = asyncio.get_running_loop()
                end = None if timeout is None else loop.time() + timeout
                await self._yield_before_taking()
                delivery = receive_nowait()
                timeout = None if end is None else max(0.0, end - loop.time())
            if delivery is not None:
                self._ready_receives += 1
                return self._decode(delivery)
            self._ready_receives = 0  # the link's receive waits, which yields
        delivery = await self._link.receive(timeout)
        if delivery is None:
            return None
        return self._decode(delivery)

    async def _yield_before_taking(self) -> None:
        """Give the other tasks their turn; cancelled here, a receive took nothing."""
        self._ready_receives = 0
        await asyncio.sleep(0)
        self._check_open()  # another task may have closed this consumer meanwhile

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
        if self._ack_nowait is not None:
            self._ack_nowait(message_id)
        else:
            await self._link.ack(message_id)
        self._acked(message_id)

    async def nack(self, message: Message | MessageId) -> None:
        message_id = message_id_of(message)
        if self._nack_nowait is not None:
            self._nack_nowait(message_id)
        else:
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


def _optional(link: object, name: str) -> Callable[..., Any] | None:
    """The link's method ``name`` of ``AsyncInlineConsumerLink``, or ``None`` without it."""
    method = getattr(link, name, None)
    return method if callable(method) else None
