"""Consumer and reader links: drive a ``ConsumerProtocol`` or ``ReaderProtocol`` from threads.

What the protocol decides (which copy of a message to hand out, which frame acks or nacks it,
the duplicate filter, a reader's resume position) lives in ``protocol/``. This link adds what
needs threads: the reader thread parses each frame and queues what arrived; ``receive`` takes
from that queue (waiting up to its timeout) and asks the protocol what to hand out; frames the
protocol asks for are written under the link's write lock. Unreadable frames are skipped (see
``Link``): what could not be read stays with the broker, which sends it again after an ack
timeout or a reconnect.

Pull mode: ``request`` and ``receive`` ask the protocol for permits, and whatever may have used
or dropped a copy (a frame read, a handout, an ack or nack) asks whether more are needed; each
``Permit`` frame is counted and written holding the link's write lock (the protocol's lock only
while counting), so it cannot land on a connection newer than the one it was counted for
(``on_reconnect`` re-asks under that lock).
"""

from __future__ import annotations

import queue
import threading
import time

import websocket

from streamfw.api import StreamRef
from streamfw.errors import StreamError
from streamfw.message import Delivery, MessageId
from streamfw_macrometa.protocol.consumer import ConsumerProtocol
from streamfw_macrometa.protocol.deliveries import Arrival, Arrived, Notice, Reply
from streamfw_macrometa.protocol.reader import ReaderProtocol
from streamfw_macrometa.protocol.receiving import receiving_protocol
from streamfw_macrometa.ws import Connector, Link, log


class MacrometaConsumer(Link):
    """``ConsumerLink`` over a WebSocket consumer (``subscription`` set) or reader session."""

    skip_bad_frames = True

    def __init__(
        self,
        connector: Connector,
        stream: StreamRef,
        subscription: str | None,
        *,
        pull: bool = False,
    ) -> None:
        protocol = receiving_protocol(stream.name, subscription, pull=pull)
        super().__init__(connector, protocol.what)
        self.protocol: ConsumerProtocol | ReaderProtocol = protocol
        self._state = threading.Lock()  # guards the protocol; never held while writing
        self._queue: queue.SimpleQueue[Arrival | None] = queue.SimpleQueue()
        self._pull = pull
        self.start()

    def request(self, messages: int) -> None:
        """Pull mode: have ``messages`` asked for, counting those asked for and not received
        (the server gets a ``permit`` frame for the rest). A no-op outside pull mode."""
        protocol = self.protocol
        if self._pull and isinstance(protocol, ConsumerProtocol) and not self.closed:
            with self.lock:  # no reconnect between counting and writing
                with self._state:
                    frame = protocol.request(messages)
                if frame is not None:
                    self.write(frame)  # not sent? on_reconnect asks again

    def _top_up(self) -> None:
        """Pull mode: ask for what a used permit or a dropped copy left missing."""
        protocol = self.protocol
        if isinstance(protocol, ConsumerProtocol):
            with self.lock:
                with self._state:
                    frame = protocol.permits()
                if frame is not None:
                    self.write(frame)

    def receive(self, timeout: float | None) -> Delivery | None:
        end = None if timeout is None else time.monotonic() + timeout
        if self._pull:
            self.request(1)
        while True:
            self.raise_if_unusable()
            wait = None if end is None else end - time.monotonic()
            if wait is not None and wait <= 0:
                wait = 0
            try:
                item = self._queue.get(timeout=wait) if wait != 0 else self._queue.get_nowait()
            except queue.Empty:
                self.raise_if_unusable()
                return None
            if item is None:
                continue  # woken up: closed or failed, checked above
            with self._state:
                handout = self.protocol.take(item)
            if handout is None:
                if self._pull:
                    self._top_up()
                continue  # an older copy, or one from a dropped connection
            if handout.frame is not None:
                self.write(handout.frame)  # a reader frees a receiver-queue slot
            return handout.delivery

    def ack(self, message_id: MessageId) -> None:
        self.raise_if_unusable()
        protocol = self.protocol
        if not isinstance(protocol, ConsumerProtocol):
            return  # readers do not acknowledge
        with self._state:
            frame = protocol.ack(message_id)
        if frame is not None:  # else: acked when the broker sends it again
            self.write(frame)  # lost with the connection? re-acked then
        if self._pull:
            self._top_up()  # the ack may have dropped a queued copy

    def nack(self, message_id: MessageId) -> None:
        self.raise_if_unusable()
        protocol = self.protocol
        if not isinstance(protocol, ConsumerProtocol):
            return
        with self._state:
            frame = protocol.nack(message_id)
        if frame is not None:  # else: the broker does not hold it here; nothing to hand back
            self.write(frame)  # lost? the reconnect hands it back anyway
        if self._pull:
            self._top_up()

    def close(self) -> None:
        super().close()
        self._queue.put(None)

    # ----------------------------------------------------------------------- reader side

    def on_text(self, text: str) -> None:
        frame = self.protocol.parse(text)  # unlocked: parsing is the costly part
        with self._state:
            event = self.protocol.receive_frame(frame)
        if isinstance(event, Arrived):
            self._queue.put(event.arrival)
        elif isinstance(event, Reply):
            self.write(event.frame)
        elif isinstance(event, Notice):
            log.debug("%s: %s", self.what, event.frame)
        if self._pull and not isinstance(event, Notice):
            self._top_up()  # the delivery used a permit; asked again if it is not handed out

    def on_disconnect(self) -> None:
        with self._state:
            self.protocol.disconnected()
            if isinstance(self.protocol, ReaderProtocol):
                self.connector.params.update(self.protocol.resume_query())

    def on_reconnect(self, ws: websocket.WebSocket) -> None:
        protocol = self.protocol
        if self._pull and isinstance(protocol, ConsumerProtocol):
            with self._state:
                frame = protocol.connected()
            if frame is not None:
                self.write(frame)  # holding the write lock: the first frame on ``ws``

    def on_fail(self, error: StreamError) -> None:
        self._queue.put(None)
