"""The user-facing consumer and reader: receive deliveries, decode them, ack or nack."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from streamfw.api import Acknowledger, ConsumerLink
from streamfw.consumer_core import ConsumerCore, check_max_messages, message_id_of
from streamfw.errors import Closed, DecodeError
from streamfw.message import Message, MessageId, message_maker


class Consumer(ConsumerCore[ConsumerLink, Message]):
    """Receives from one subscription (or, as a reader, from a position in a stream).

    ``receive(timeout)`` returns the next ``Message`` or ``None`` once ``timeout`` seconds
    pass; iterating blocks until the consumer is closed. A payload that cannot be decoded --
    malformed, tagged with an unknown or ill-formed codec, larger than ``max_message_size``
    or inflating past it, or making any codec stage raise -- raises ``DecodeError`` carrying
    the message (``value=None``); the consumer stays usable, so catch it, then ack, nack or
    inspect ``err.undecodable``. Iteration follows the same rule per message: see
    ``messages``.
    """

    _MAKE = message_maker(Message)

    def _setup(self) -> None:
        self._acker: Acknowledger = self if self._acks_through_consumer else self._link

    def receive(self, timeout: float | None = None) -> Message | None:
        if self._closed:
            self._check_open()  # raises
        delivery = self._link.receive(timeout)
        if delivery is None:
            return None
        return self._decode(delivery)

    def receive_many(self, max_messages: int, timeout: float | None = None) -> list[Message]:
        """Up to ``max_messages`` messages: as soon as that many came, or once ``timeout`` passed.

        Pulsar's ``batchReceive``; an empty list when nothing came in time. A pull-mode
        consumer (``pull_mode=True``) first asks the broker for ``max_messages`` (less what
        it asked for before and has not received yet), so it never holds more than asked.
        A message that does not decode ends the batch: raised as ``DecodeError`` at once if
        it is the first, otherwise the batch so far is returned and the error is raised by
        the next ``receive_many`` (nothing is dropped: ack, nack or inspect
        ``err.undecodable`` as with ``receive``).

        Raises:
            ConfigError: ``max_messages`` is not an int >= 1.
        """
        check_max_messages(max_messages)
        self._raise_deferred()
        request = getattr(self._link, "request", None)  # pull mode: ask for what we want
        if request is not None and not self._closed:
            request(max_messages)
        end = None if timeout is None else time.monotonic() + timeout
        batch: list[Message] = []
        while len(batch) < max_messages:
            left = None if end is None else max(0.0, end - time.monotonic())
            try:
                message = self.receive(left)
            except DecodeError as exc:
                if not batch:
                    raise
                self._deferred_error = exc
                break
            if message is None:
                break
            batch.append(message)
        return batch

    def ack(self, message: Message | MessageId) -> None:
        message_id = message_id_of(message)
        self._link.ack(message_id)
        self._acked(message_id)

    def nack(self, message: Message | MessageId) -> None:
        message_id = message_id_of(message)
        self._link.nack(message_id)
        self._nacked(message_id)

    def close(self) -> None:
        """Detach; unacked messages go back to the subscription. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._link.close()

    def messages(
        self, on_decode_error: Callable[[DecodeError[Message]], object] | None = None
    ) -> MessageIterator:
        """Iterate over messages until this consumer is closed (``iter(consumer)`` too).

        Args:
            on_decode_error: called with the ``DecodeError`` of each message that does not
                decode (ack, nack or park ``err.undecodable`` there); the iteration then goes
                on with the next message, so one ``for`` loop survives bad payloads. Left
                ``None``, ``next()`` raises the ``DecodeError`` and the same iterator goes on
                with the next message when called again.
        """
        return MessageIterator(self, on_decode_error)

    def __iter__(self) -> MessageIterator:
        return MessageIterator(self, None)

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MessageIterator(Iterator[Message]):
    """Messages of one consumer, one per ``next()``, until the consumer is closed.

    Unlike a generator, it survives an exception: a ``DecodeError`` raised by ``next()`` is
    about that one message, and the next call takes the next one. Errors other than a
    ``DecodeError`` (``ConnectionLost``, ``StreamDeleted``, ...) are raised too; the
    application's own ``close()`` ends the iteration.
    """

    def __init__(
        self, consumer: Consumer, on_decode_error: Callable[[DecodeError[Message]], object] | None
    ) -> None:
        self._consumer = consumer
        self._on_decode_error = on_decode_error

    def __iter__(self) -> MessageIterator:
        return self

    def __next__(self) -> Message:
        while True:
            try:
                message = self._consumer.receive(None)
            except Closed:
                raise StopIteration from None
            except DecodeError as exc:
                if self._on_decode_error is None:
                    raise
                self._on_decode_error(exc)
                continue
            if message is not None:
                return message
