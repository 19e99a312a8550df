"""A received message under ``streamfw.aio``: the sync ``Message``'s fields, awaited acks."""

from __future__ import annotations

from typing import Protocol

import attrs

from streamfw.message import MessageId, ReceivedMessage, no_acker


class AsyncAcknowledger(Protocol):
    """What acks a message for it: its consumer, or the consumer's link.

    One that also has plain ``ack_nowait(message_id)`` and ``nack_nowait(message_id)``
    methods (an ``AsyncInlineConsumerLink``) is called through those, with no coroutine of
    its own; they must do what the awaited methods do, without suspending.
    """

    async def ack(self, message_id: MessageId) -> None: ...

    async def nack(self, message_id: MessageId) -> None: ...


@attrs.frozen
class Message(ReceivedMessage):
    """A received message, decoded; the fields of ``streamfw.Message`` (``ReceivedMessage``).
    Hashable; ``value`` is left out of equality.

    ``await msg.ack()`` and ``await msg.nack()`` act on the consumer that received it.
    """

    _acker: AsyncAcknowledger | None = attrs.field(
        default=None, eq=False, repr=False, alias="acker"
    )

    async def ack(self) -> None:
        """Acknowledge: the subscription will not deliver this message again."""
        ack_nowait = getattr(self._acker, "ack_nowait", None)
        if ack_nowait is not None:
            ack_nowait(self.id)
        else:
            await self._acker_or_raise().ack(self.id)

    async def nack(self) -> None:
        """Negative-acknowledge: redeliver after the consumer's nack delay."""
        nack_nowait = getattr(self._acker, "nack_nowait", None)
        if nack_nowait is not None:
            nack_nowait(self.id)
        else:
            await self._acker_or_raise().nack(self.id)

    def _acker_or_raise(self) -> AsyncAcknowledger:
        if self._acker is None:
            raise no_acker(self.id)
        return self._acker
