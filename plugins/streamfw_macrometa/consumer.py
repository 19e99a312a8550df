"""Consumer and reader links: a queue fed by the reader thread; acks echo the raw id.

Deliveries are queued tagged with the connection's generation. After a reconnect the broker
sends every unacknowledged message again, so deliveries still queued from the old connection
are dropped (``receive`` skips old generations) rather than shown twice. Likewise a queued
copy is dropped when a newer copy of the same message arrives (an ack timeout or nack
redelivered it before the application took the first one), and when the application acks
that message through an earlier copy. Messages acknowledged here are remembered (the most
recent ``ACK_MEMORY``): if one comes back because its ack died with the connection, it is
acked again silently and never shown -- nothing acked comes back.

A reader frees its window slot (a ``{"messageId"}`` frame, which acks nothing on a reader)
when the application takes the message; after a reconnect it resumes after the last message
taken.
"""

from __future__ import annotations

import collections
import itertools
import json
import queue
import threading
import time

import websocket

from streamfw import wire
from streamfw.api import StreamRef
from streamfw.errors import LocalProtocolError, StreamError
from streamfw.message import Delivery, MessageId
from streamfw.wire import FrameError
from streamfw_macrometa.ws import Connector, Link

ACK_MEMORY = 100_000


class MacrometaConsumer(Link):
    """``ConsumerLink`` over a WebSocket consumer (``subscription`` set) or reader session."""

    def __init__(self, connector: Connector, stream: StreamRef, subscription: str | None) -> None:
        what = (
            f"consumer of {subscription!r} on stream {stream.name!r}"
            if subscription is not None
            else f"reader on stream {stream.name!r}"
        )
        super().__init__(connector, what)
        self._stream = stream
        self._reader = subscription is None
        self._state = threading.Lock()  # bookkeeping; never held while writing to the socket
        self._queue: queue.SimpleQueue[tuple[int, int, Delivery] | None] = queue.SimpleQueue()
        self._generation = 0
        self._arrivals = itertools.count()
        self._latest: dict[MessageId, int] = {}  # queued message -> its newest arrival
        self._raw: dict[MessageId, str] = {}  # delivered, not yet acked or nacked
        self._acked: collections.OrderedDict[MessageId, None] = collections.OrderedDict()
        self.start()

    def receive(self, timeout: float | None) -> Delivery | None:
        end = None if timeout is None else time.monotonic() + timeout
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
            generation, arrival, delivery = item
            mid = delivery.message_id
            with self._state:
                if generation != self._generation:
                    continue  # the broker redelivers it on the new connection
                if self._latest.get(mid) != arrival:
                    continue  # a newer copy is queued behind it
                del self._latest[mid]
                if mid in self._acked:
                    continue  # acked through an earlier copy
            if self._reader:
                raw = self._raw.pop(delivery.message_id, None)
                if raw is not None:
                    self.write(wire.ack_frame(raw))  # frees a window slot; acks nothing
                    self.connector.params["messageId"] = raw  # resume after it on reconnect
            return delivery

    def ack(self, message_id: MessageId) -> None:
        self.raise_if_unusable()
        if self._reader:
            return  # readers do not acknowledge
        with self._state:
            raw = self._raw.pop(message_id, None)
            if raw is None:
                if message_id in self._acked:
                    return  # acks are idempotent
                raise LocalProtocolError(f"{message_id} was not delivered to {self.what}")
            self._acked[message_id] = None
            while len(self._acked) > ACK_MEMORY:
                self._acked.popitem(last=False)
        self.write(wire.ack_frame(raw))  # lost with the connection? re-acked on redelivery

    def nack(self, message_id: MessageId) -> None:
        self.raise_if_unusable()
        if self._reader:
            return
        with self._state:
            raw = self._raw.pop(message_id, None)
        if raw is None:
            if message_id in self._acked:
                return
            raise LocalProtocolError(f"{message_id} was not delivered to {self.what}")
        self.write(wire.nack_frame(raw))  # lost? the reconnect redelivers it anyway

    def close(self) -> None:
        super().close()
        self._queue.put(None)

    # ----------------------------------------------------------------------- reader side

    def on_text(self, text: str) -> None:
        try:
            delivery, raw = wire.parse_delivery(self._stream.name, text)
        except FrameError:
            if _is_notice(text):
                return  # an error answer to one of our frames, or endOfTopic: not fatal
            raise
        mid = delivery.message_id
        with self._state:
            again = mid in self._acked
            if not again:
                self._raw[mid] = raw
                arrival = self._latest[mid] = next(self._arrivals)
                self._queue.put((self._generation, arrival, delivery))
        if again:
            self.write(wire.ack_frame(raw))

    def on_disconnect(self) -> None:
        with self._state:
            self._generation += 1
            self._latest.clear()

    def on_reconnect(self, ws: websocket.WebSocket) -> None:
        pass

    def on_fail(self, error: StreamError) -> None:
        self._queue.put(None)


def _is_notice(text: str) -> bool:
    """A server frame that is not a message: ``{"error": …, "code": …}`` (the emulator's answer
    to a bad ack) or ``{"endOfTopic": …}``."""
    try:
        frame = json.loads(text)
    except ValueError:
        return False
    return isinstance(frame, dict) and ("error" in frame or "endOfTopic" in frame)
