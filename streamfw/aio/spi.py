"""The asyncio transport SPI: what a transport implements to run natively under ``streamfw.aio``.

A plugin offers it by setting ``TransportSpec.async_factory`` to an async function that takes
the same ``TransportConfig`` as the sync ``factory`` and returns an ``AsyncTransport``::

    async def open_async(config: TransportConfig) -> AsyncTransport: ...

    register(TransportSpec("kafka", KafkaTransport, "...", async_factory=open_async))

A transport without one still works under ``streamfw.aio``: the thread adapter
(``streamfw.aio.adapter``) runs its sync SPI in worker threads. ``streamfw plugins`` says
which transports are native.

The values are those of the sync SPI (``streamfw.api``): ``Envelope`` in, ``Delivery`` out,
``MessageId``, ``StreamRef`` and the option classes, and every method raises the same
``StreamError`` subclasses as its sync twin for the same conditions (``Closed`` once closed,
``StreamNotFound``, ``SubscriptionBusy``, ``ConnectionLost``, ...). The user-facing layer
(``streamfw.aio.client``) applies the codec pipeline, names and option checks, as the sync
``Client`` does; a transport sees only valid names and options.

Rules every method follows:

* It runs on the event loop that called it and never blocks that loop: no blocking socket
  call, no ``time.sleep``, no thread lock held for longer than a few non-blocking statements
  (a lock shared with sync threads is fine if nothing done under it waits).
* Cancellation (``task.cancel()``, ``asyncio.timeout``, ``asyncio.wait_for``) may arrive at
  any ``await``. The transport and the link stay usable afterwards, and each method's
  docstring says what a cancelled call did: in short, a cancelled ``receive`` took nothing, a
  cancelled ``send`` sent nothing, a cancelled ``ack``/``nack``/admin call did it or did not
  (as a timeout would leave it on the sync side). The way to get there: commit a change of
  state in one step with no ``await`` between taking a value off a queue and returning it,
  and write frames from one writer task fed by a queue when a write may suspend, so a
  caller's cancellation cannot cut a frame in half or leave it half-recorded.
* Futures a link returns are ``asyncio.Future`` objects of the running loop. A link resolves
  each exactly once and ignores one the application cancelled (check ``done()`` first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from streamfw.api import (
    ConsumerOptions,
    ProducerOptions,
    ReaderOptions,
    StreamRef,
    SubscriptionInfo,
    TransportConfig,
)
from streamfw.message import Delivery, Envelope, MessageId


class AsyncProducerLink(Protocol):
    """One open producer on one stream."""

    async def send(self, envelope: Envelope) -> asyncio.Future[MessageId]:
        """Hand one message to the broker; return a future of its confirmation.

        Waits only for room: at most ``ProducerOptions.max_pending`` sends may be unconfirmed
        at once; when the window is full, wait for a confirmation, up to
        ``ProducerOptions.send_timeout`` seconds, then raise ``NotSent``. Messages reach the
        broker in the order their ``send`` calls returned.

        The returned future resolves to the stored message's ``MessageId``, or fails as the
        sync link's future fails: ``SendError`` (refused, e.g. ``BacklogQuotaExceeded``),
        ``OutcomeUnknown`` (written, then the link gave up, was closed or lost its stream
        before the receipt: it may be stored; the ending error is the ``__cause__``).

        Raises:
            NotSent: no room within ``send_timeout``; not sent.
            MessageTooLarge: the transport's frame limit refuses it; not sent.
            Closed: ``close()`` was called.
            ConnectionLost, StreamDeleted: the link failed before the message left; not sent.

        Cancellation: a ``send`` cancelled before it returns sent nothing and leaves no
        trace (the window slot it may have taken is given back); retrying is safe.
        """
        ...

    async def flush(self, timeout: float | None) -> None:
        """Return once every future ``send`` returned so far is done (resolved or failed).

        Raises:
            SendTimeout: some were still unconfirmed after ``timeout`` seconds (``None``: no
                limit), with ``future=None``; they stay pending.

        Cancellation: changes nothing; the sends stay pending.
        """
        ...

    async def close(self) -> None:
        """Detach from the stream; idempotent. The user layer flushes first.

        Futures still unconfirmed fail with ``OutcomeUnknown`` whose cause is ``Closed``.
        Cancellation: the link is closed all the same (finish the bookkeeping before the
        first ``await``, or shield the rest).
        """
        ...


class AsyncInlineProducerLink(AsyncProducerLink, Protocol):
    """A producer link whose broker confirms every send before ``send`` returns (loopback).

    Optional, the async twin of ``streamfw.api.InlineProducerLink``: when a link has it and no
    plugin wraps ``streamfw_send``, ``Producer.send`` calls ``send_confirmed`` directly, with
    no coroutine of the link's and no ``asyncio.Future`` per message; ``send_async`` still
    awaits ``send``. A link without it (every link written before it existed) works as before.
    """

    def send_confirmed(self, envelope: Envelope) -> MessageId:
        """Store ``envelope`` and return its id, on the event loop, without waiting.

        A plain function, not a coroutine: it must never block nor need the loop to run
        (nothing to wait for is the point). It returns the id ``send``'s future would have
        resolved to, or raises what ``send`` would have raised or its future carried
        (``NotSent``, ``SendError``, ``StreamDeleted``, ``Closed``, ...). Not being a
        coroutine, it cannot be cancelled halfway: it stored the message or raised.
        """
        ...


class AsyncConsumerLink(Protocol):
    """One attached consumer of a durable subscription, or one reader."""

    async def receive(self, timeout: float | None) -> Delivery | None:
        """The next delivery; ``None`` once ``timeout`` seconds pass without one.

        ``timeout=None`` waits as long as it takes. Hand out only deliveries the broker
        still counts as held by this consumer (a copy made stale by an ack timeout, a nack or
        a clear-backlog is dropped, not shown), and give the flow-control permit back when a
        delivery is handed to the caller (readers: as on the sync side, a message counts
        against the receiver queue until it is received). Deliveries of one consumer come out
        in the order the broker dispatched them.

        Raises:
            Closed: ``close()`` was called, before or during the wait (it wakes the wait).
            StreamDeleted: the stream was deleted under the consumer.
            ConnectionLost: the link gave up reconnecting.

        Cancellation: a cancelled ``receive`` took nothing: take a delivery off the queue
        only in the same step, with no ``await`` in between, that returns it; whatever
        arrived stays for the next ``receive``.
        """
        ...

    async def ack(self, message_id: MessageId) -> None:
        """Acknowledge a delivered message: the subscription will not deliver it again.

        Idempotent, and valid through any copy of the message this consumer received
        (including one taken back by an ack timeout). A reader ignores it. Returns once the
        ack is applied or queued to be written; it need not wait for a reply.

        Raises:
            LocalProtocolError: ``message_id`` was never delivered to this consumer.
            Closed: ``close()`` was called.

        Cancellation: the ack was applied (or queued) or not at all; acking again is safe.
        """
        ...

    async def nack(self, message_id: MessageId) -> None:
        """Hand a delivered message back, for redelivery after ``ConsumerOptions.nack_delay``.

        Silent for a message already acked; a reader ignores it. Same errors and
        cancellation rule as ``ack``.
        """
        ...

    # Optional, for pull mode (``ConsumerOptions.pull_mode``), as on the sync ``ConsumerLink``:
    #
    #     async def request(self, messages: int) -> None:
    #         """Have ``messages`` asked for, counting those asked for and not received yet:
    #         grant the broker that many more permits. A no-op outside pull mode."""
    #
    # ``Consumer.receive_many`` awaits it when the link has it.

    async def close(self) -> None:
        """Detach; unacked messages go back to the subscription; idempotent.

        A ``receive`` waiting meanwhile raises ``Closed``. Cancellation: closed all the same.
        """
        ...


class AsyncInlineConsumerLink(AsyncConsumerLink, Protocol):
    """A consumer link that can answer at once when it holds a delivery (loopback).

    Optional: when a link has these, ``Consumer.receive`` first calls ``receive_nowait`` and
    awaits ``receive`` only when it returned ``None``, and a message's ``ack()``/``nack()``
    call ``ack_nowait``/``nack_nowait`` (when no plugin implements the ack hooks), so a
    message that is ready costs no coroutine of the link's. A link without them works as
    before. They are plain functions, run on the event loop: they never block, and so a
    cancellation can never land inside one.
    """

    def receive_nowait(self) -> Delivery | None:
        """The next delivery if one can be handed out without waiting, else ``None``.

        What ``await receive(0)`` would return, by the same rules (stale copies dropped,
        permits given back, order kept), and it raises what ``receive`` raises (``Closed``,
        ``StreamDeleted``, ``ConnectionLost``). ``None`` tells the caller to await
        ``receive`` for the wait.
        """
        ...

    def ack_nowait(self, message_id: MessageId) -> None:
        """What ``await ack(message_id)`` does, with the same errors, without suspending."""
        ...

    def nack_nowait(self, message_id: MessageId) -> None:
        """What ``await nack(message_id)`` does, with the same errors, without suspending."""
        ...


class AsyncTransport(Protocol):
    """One connection to one broker; the async twin of ``streamfw.api.Transport``.

    The admin methods mean and raise what the sync ones do. A cancelled admin call may or may
    not have taken effect at the broker, as one that timed out on the sync side; the
    transport stays usable. The ``open_*`` methods return an attached link or raise; a
    cancelled ``open_*`` leaves nothing attached.
    """

    async def create_stream(self, stream: StreamRef) -> None: ...

    async def delete_stream(self, stream: StreamRef, *, force: bool) -> None: ...

    async def list_streams(self, *, local: bool | None) -> list[StreamRef]: ...

    async def backlog(self, stream: StreamRef) -> int: ...

    async def stats(self, stream: StreamRef) -> dict[str, Any]: ...

    async def subscriptions(self, stream: StreamRef) -> list[SubscriptionInfo]: ...

    async def delete_subscription(self, stream: StreamRef, subscription: str) -> None: ...

    async def clear_backlog(self, stream: StreamRef, subscription: str | None) -> None: ...

    async def open_producer(
        self, stream: StreamRef, options: ProducerOptions
    ) -> AsyncProducerLink: ...

    async def open_consumer(
        self, stream: StreamRef, subscription: str, options: ConsumerOptions
    ) -> AsyncConsumerLink: ...

    async def open_reader(self, stream: StreamRef, options: ReaderOptions) -> AsyncConsumerLink: ...

    async def close(self) -> None:
        """Close every link still open, then the connection; idempotent."""
        ...


AsyncTransportFactory = Callable[[TransportConfig], Awaitable[AsyncTransport]]
"""What ``TransportSpec.async_factory`` holds: builds and connects an ``AsyncTransport``.

Called on the event loop with the URL and the user's keyword options; raises ``ConfigError``
for a bad URL or option (as the sync factory does) and ``ConnectFailed``/``AuthError`` when
it connects eagerly and cannot.
"""
