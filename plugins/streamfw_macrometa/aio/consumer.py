"""The asyncio consumer and reader link: drives a ``ConsumerProtocol`` or ``ReaderProtocol``.

What the protocol decides (which copy to hand out, which frame acks or nacks it, the
duplicate filter, a reader's resume position) lives in ``protocol/``, as for the threaded
link. Here the read task queues what arrived; ``receive`` takes the next arrival off that
queue and asks the protocol what to hand out in one step, with no ``await`` in between, so a
cancelled ``receive`` took nothing; ``ack``/``nack`` apply to the protocol and queue their frame
at once (an ack lost with a connection is sent again when the broker redelivers).

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
    """``AsyncConsumerLink`` over a consumer (``subscription`` set) or reader session."""

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

    async def receive(self, timeout: float | None) -> Delivery | None:
        arrivals = self._arrivals
        end = None if timeout is None else self._loop.time() + timeout
        if self._pull:
            await self.request(1)
        while True:
            self.raise_if_unusable()
            while arrivals:
                handout = self.protocol.take(arrivals.popleft())
                if handout is None:
                    if self._pull:
                        self._top_up()
                    continue  # an older copy, or one from a dropped connection
                if handout.frame is not None:
                    self.write(handout.frame)  # a reader frees a receiver-queue slot
                return handout.delivery
            wait = None if end is None else end - self._loop.time()
            if wait is not None and wait <= 0:
                return None
            # a cancellation lands here, with nothing taken
            await self._arrived.wait_for(self._ready, wait)

    def _ready(self) -> bool:
        return bool(self._arrivals) or self.closed or self.failure is not None

    async def ack(self, message_id: MessageId) -> None:
        self.raise_if_unusable()
        protocol = self.protocol
        if isinstance(protocol, ConsumerProtocol):  # readers do not acknowledge
            frame = protocol.ack(message_id)
            if frame is not None:  # else: acked when the broker sends it again
                self.write(frame)
            if self._pull:
                self._top_up()  # the ack may have dropped a queued copy

    async def nack(self, message_id: MessageId) -> None:
        self.raise_if_unusable()
        protocol = self.protocol
        if isinstance(protocol, ConsumerProtocol):
            frame = protocol.nack(message_id)
            if frame is not None:  # else: the broker does not hold it here
                self.write(frame)
            if self._pull:
                self._top_up()

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
