"""The asyncio consumer and reader link: drives a ``ConsumerProtocol`` or ``ReaderProtocol``.

What the protocol decides (which copy to hand out, which frame acks or nacks it, the
duplicate filter, a reader's resume position) lives in ``protocol/``, as for the threaded
link. Here the read task queues what arrived; ``receive`` takes the next arrival off that
queue and asks the protocol what to hand out in one step, with no ``await`` in between, so a
cancelled ``receive`` took nothing; ``ack``/``nack`` apply to the protocol and queue their frame
at once (an ack lost with a connection is sent again when the broker redelivers).

None of that needs to wait while a delivery is queued, so the link is an
``AsyncInlineConsumerLink``: ``receive_nowait`` is that one step (``receive`` waits only when
it finds nothing), and ``ack_nowait``/``nack_nowait`` are the whole of ``ack``/``nack`` (the
writer's queue takes every frame at once: no state in which an ack would have to wait). The
asyncio ``Consumer`` then receives a queued delivery without a coroutine of the link's, and
yields to the loop after ``READY_RECEIVES_PER_YIELD`` such receives in a row, so a consumer
task that always finds a delivery queued leaves the other tasks their turn.

Pull mode: ``request`` and ``receive`` ask the protocol for permits, and whatever may have used
or dropped a copy (a frame read, a handout, an ack or nack) asks whether more are needed;
``on_reconnect`` asks again for what is still wanted, first thing on the new connection.
"""

from __future__ import annotations

import collections

from streamfw.api import StreamRef
from streamfw.errors import StreamError
from streamfw.message import Delivery, MessageId
from streamfw_macrometa.aio.link import AsyncLink, Endpoint, log
from streamfw_macrometa.aio.waiters import Waiters
from streamfw_macrometa.protocol.consumer import ConsumerProtocol
from streamfw_macrometa.protocol.deliveries import Arrival, Arrived, Notice, Reply
from streamfw_macrometa.protocol.reader import ReaderProtocol
from streamfw_macrometa.protocol.receiving import receiving_protocol


class AsyncMacrometaConsumer(AsyncLink):
    """``AsyncInlineConsumerLink`` over a consumer (``subscription`` set) or reader session."""

    skip_bad_frames = True  # what could not be read stays with the broker

    def __init__(
        self,
        endpoint: Endpoint,
        stream: StreamRef,
        subscription: str | None,
        *,
        pull: bool = False,
    ) -> None:
        protocol = receiving_protocol(stream.name, subscription, pull=pull)
        super().__init__(endpoint, protocol.what)
        self.protocol: ConsumerProtocol | ReaderProtocol = protocol
        self._arrivals: collections.deque[Arrival] = collections.deque()
        self._arrived = Waiters()
        self._pull = pull

    async def request(self, messages: int) -> None:
        """Pull mode: have ``messages`` asked for, counting those asked for and not received
        (the server gets a ``permit`` frame for the rest). A no-op outside pull mode."""
        self._request(messages)

    def _request(self, messages: int) -> None:
        protocol = self.protocol
        if self._pull and isinstance(protocol, ConsumerProtocol) and not self.closed:
            self._send(protocol.request(messages))

    def _top_up(self) -> None:
        """Pull mode: ask for what a used permit or a dropped copy left missing."""
        protocol = self.protocol
        if isinstance(protocol, ConsumerProtocol):
            self._send(protocol.permits())

    def _send(self, frame: str | None) -> None:
        if frame is not None:
            self.write(frame)  # no connection? on_reconnect asks again

    def receive_nowait(self) -> Delivery | None:
        """What ``await receive(0)`` returns, without suspending: the next queued delivery
        the protocol hands out, or ``None`` (``AsyncInlineConsumerLink``)."""
        if self._pull:
            self._request(1)
        self.raise_if_unusable()
        return self._take()

    async def receive(self, timeout: float | None) -> Delivery | None:
        end = None if timeout is None else self._loop.time() + timeout
        if self._pull:
            self._request(1)
        while True:
            self.raise_if_unusable()
            delivery = self._take()
            if delivery is not None:
                return delivery
            wait = None if end is None else end - self._loop.time()
            if wait is not None and wait <= 0:
                return None
            # a cancellation lands here, with nothing taken
            await self._arrived.wait_for(self._ready, wait)

    def _take(self) -> Delivery | None:
        """The next queued arrival the protocol hands out, taken in one step; None if none."""
        arrivals = self._arrivals
        while arrivals:
            handout = self.protocol.take(arrivals.popleft())
            if handout is None:
                if self._pull:
                    self._top_up()
                continue  # an older copy, or one from a dropped connection
            if handout.frame is not None:
                self.write(handout.frame)  # a reader frees a receiver-queue slot
            return handout.delivery
        return None

    def _ready(self) -> bool:
        return bool(self._arrivals) or self.closed or self.failure is not None

    def ack_nowait(self, message_id: MessageId) -> None:
        """What ``await ack(message_id)`` does; it never needs to wait: the frame, if any, is
        queued for the writer task (``AsyncInlineConsumerLink``)."""
        self.raise_if_unusable()
        protocol = self.protocol
        if isinstance(protocol, ConsumerProtocol):  # readers do not acknowledge
            frame = protocol.ack(message_id)
            if frame is not None:  # else: acked when the broker sends it again
                self.write(frame)
            if self._pull:
                self._top_up()  # the ack may have dropped a queued copy

    def nack_nowait(self, message_id: MessageId) -> None:
        """What ``await nack(message_id)`` does, without suspending (see ``ack_nowait``)."""
        self.raise_if_unusable()
        protocol = self.protocol
        if isinstance(protocol, ConsumerProtocol):
            frame = protocol.nack(message_id)
            if frame is not None:  # else: the broker does not hold it here
                self.write(frame)
            if self._pull:
                self._top_up()

    async def ack(self, message_id: MessageId) -> None:
        self.ack_nowait(message_id)

    async def nack(self, message_id: MessageId) -> None:
        self.nack_nowait(message_id)

    # ------------------------------------------------------------------------ link side

    def on_text(self, data: bytes) -> None:
        event = self.protocol.receive(data)  # FrameError: skipped
        if isinstance(event, Arrived):
            self._arrivals.append(event.arrival)
            self._arrived.wake()
        elif isinstance(event, Reply):
            self.write(event.frame)
        elif isinstance(event, Notice):
            log.debug("%s: %s", self.what, event.frame)
        if self._pull and not isinstance(event, Notice):
            self._top_up()  # the delivery used a permit; asked again if it is not handed out

    def on_disconnect(self) -> None:
        self.protocol.disconnected()
        if isinstance(self.protocol, ReaderProtocol):
            self.endpoint.params.update(self.protocol.resume_query())

    def on_reconnect(self) -> None:
        protocol = self.protocol
        if self._pull and isinstance(protocol, ConsumerProtocol):
            self._send(protocol.connected())

    def on_fail(self, error: StreamError) -> None:
        self._arrived.wake()
