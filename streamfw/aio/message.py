"""A received message under ``streamfw.aio``: the sync ``Message``'s fields, awaited acks."""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

import attrs

from streamfw.errors import LocalProtocolError
from streamfw.message import MessageId, Properties, _to_properties


class AsyncAcknowledger(Protocol):
    async def ack(self, message_id: MessageId) -> None: ...

    async def nack(self, message_id: MessageId) -> None: ...


@attrs.frozen
class Message:
    """A received message, decoded; the fields of ``streamfw.Message``. Hashable; ``value`` is
    left out of equality.

    ``await msg.ack()`` and ``await msg.nack()`` act on the consumer that received it.
    """

    id: MessageId
    value: Any = attrs.field(eq=False)
    payload: bytes
    properties: Properties = attrs.field(converter=_to_properties)
    key: str | None
    publish_time: dt.datetime
    redelivery_count: int
    stream: str
    subscription: str | None
    _acker: AsyncAcknowledger | None = attrs.field(
        default=None, eq=False, repr=False, alias="acker"
    )

    async def ack(self) -> None:
        """Acknowledge: the subscription will not deliver this message again."""
        await self._acker_or_raise().ack(self.id)

    async def nack(self) -> None:
        """Negative-acknowledge: redeliver after the consumer's nack delay."""
        await self._acker_or_raise().nack(self.id)

    def _acker_or_raise(self) -> AsyncAcknowledger:
        if self._acker is None:
            raise LocalProtocolError(f"{self.id}: this message was not received by a consumer")
        return self._acker
