"""Consumer and reader links: a queue fed by the reader thread; acks echo the raw id.

Copies. The broker may send one message more than once: again after an ack timeout, after a
nack, after a reconnect. Each arrival is a *copy*; ``receive`` hands out the newest copy of a
message and skips older ones still queued, and a copy queued on a connection that has since
dropped (the broker sends it again on the new one). ``ack`` and ``nack`` take a message id and
act on the *message*, whichever copy the application holds, as the loopback broker does:

* ``ack`` acks it: the ack goes out for the newest copy handed out if that came over the
  current connection, else for a copy of the same message queued on it (checked by digest,
  below), else it is sent when the broker next sends the message (an old id alone is not sent
  on a new connection: a restarted server may have given it to another message). Copies
  queued before the ack are never shown.
* ``nack`` hands it back if the broker holds it at this consumer: the newest copy handed out,
  unless that was nacked already or came over a dropped connection (the drop handed it back),
  or else a copy that arrived since and is still queued. Copies queued before the nack are
  skipped; the broker sends the message again after ``nack_delay``. A later ``ack`` still
  acks it.

Acked messages are remembered (the most recent ``ACK_MEMORY``): a copy that arrives after the
ack (an ack timeout raced it, or the ack died with a dropped connection) is acked again
silently and never shown. That filter matches the id *and* a digest of the message (publish
time, key, properties, payload): an id alone never drops a delivery, since ids repeat when a
server restarts without its data.

A reader frees its window slot (a ``{"messageId"}`` frame, which acks nothing on a reader)
when the application takes the message; after a reconnect it resumes after the last message
taken. Unreadable frames are skipped (see ``Link``): what could not be read stays with the
broker, which sends it again after an ack timeout or a reconnect.
"""

from __future__ import annotations

import collections
import hashlib
import queue
import threading
import time
from typing import TypeVar

import attrs
import websocket

from streamfw.api import StreamRef
from streamfw.errors import LocalProtocolError, StreamError
from streamfw.message import Delivery, MessageId
from streamfw_macrometa import wire
from streamfw_macrometa.wire import FrameError
from streamfw_macrometa.ws import Connector, Link

ACK_MEMORY = 100_000  # acked messages remembered; also bounds the handed-out bookkeeping
_T = TypeVar("_T")


@attrs.define
class _Copy:
    """The newest copy of a message handed to the application, not yet acked."""

    raw: str  # the id exactly as the broker sent it: acks and nacks echo it
    generation: int  # the connection it came over
    digest: bytes
    nacked: bool = False


@attrs.define(eq=False)
class _Arrival:
    generation: int
    delivery: Delivery
    raw: str
    _digest: bytes | None = None

    @property
    def digest(self) -> bytes:
        if self._digest is None:
            self._digest = digest(self.delivery)
        return self._digest


def digest(delivery: Delivery) -> bytes:
    """What tells two messages with one id apart: publish time, key, properties, payload."""
    head = repr((delivery.publish_time, delivery.key, sorted(delivery.properties.items())))
    h = hashlib.blake2b(head.encode(), digest_size=16)
    h.update(delivery.payload)
    return h.digest()


class MacrometaConsumer(Link):
    """``ConsumerLink`` over a WebSocket consumer (``subscription`` set) or reader session."""

    skip_bad_frames = True

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
        self._queue: queue.SimpleQueue[_Arrival | None] = queue.SimpleQueue()
        self._generation = 0
        self._latest: dict[MessageId, _Arrival] = {}  # queued message -> its newest copy
        self._handed: collections.OrderedDict[MessageId, _Copy] = collections.OrderedDict()
        self._acked: collections.OrderedDict[MessageId, bytes] = collections.OrderedDict()
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
            delivery = item.delivery
            mid = delivery.message_id
            with self._state:
                if item.generation != self._generation:
                    continue  # the broker sends it again on the new connection
                if self._latest.get(mid) is not item:
                    continue  # a newer copy is queued behind it, or it was acked/nacked since
                del self._latest[mid]
                if not self._reader:
                    self._acked.pop(mid, None)  # (another message under a reused id)
                    self._handed[mid] = _Copy(item.raw, item.generation, item.digest)
                    self._handed.move_to_end(mid)
                    _trim(self._handed)
            if self._reader:
                self.write(wire.ack_frame(item.raw))  # frees a window slot; acks nothing
                self.connector.params["messageId"] = item.raw  # resume after it on reconnect
            return delivery

    def ack(self, message_id: MessageId) -> None:
        self.raise_if_unusable()
        if self._reader:
            return  # readers do not acknowledge
        with self._state:
            copy = self._handed.pop(message_id, None)
            if copy is None:
                if message_id in self._acked:
                    return  # acks are idempotent
                raise LocalProtocolError(f"{message_id} was not delivered to {self.what}")
            self._acked[message_id] = copy.digest
            self._acked.move_to_end(message_id)
            _trim(self._acked)
            raw = self._held_here(message_id, copy, nacked_counts=True)
        if raw is not None:  # else: acked when the broker sends it again (see on_text)
            self.write(wire.ack_frame(raw))  # lost with the connection? re-acked then

    def nack(self, message_id: MessageId) -> None:
        self.raise_if_unusable()
        if self._reader:
            return
        with self._state:
            copy = self._handed.get(message_id)
            if copy is None:
                if message_id in self._acked:
                    return
                raise LocalProtocolError(f"{message_id} was not delivered to {self.what}")
            raw = self._held_here(message_id, copy, nacked_counts=False)
            copy.nacked = True
        if raw is not None:  # else: the broker does not hold it here; nothing to hand back
            self.write(wire.nack_frame(raw))  # lost? the reconnect hands it back anyway

    def _held_here(self, mid: MessageId, copy: _Copy, *, nacked_counts: bool) -> str | None:
        """The raw id to ack/nack ``mid`` with on the current connection, if the broker sent
        it over this one; drops the copies queued so far. Call holding ``_state``."""
        queued = self._latest.get(mid)
        if copy.generation == self._generation and (nacked_counts or not copy.nacked):
            raw = copy.raw
        elif queued is not None and queued.digest == copy.digest:
            raw = queued.raw  # arrived again since: that copy is the one the broker holds
        else:
            return None
        self._latest.pop(mid, None)
        return raw

    def close(self) -> None:
        super().close()
        self._queue.put(None)

    # ----------------------------------------------------------------------- reader side

    def on_text(self, text: str) -> None:
        try:
            delivery, raw = wire.parse_delivery(self._stream.name, text)
        except FrameError:
            if wire.is_notice(text):
                self.on_notice(text)
                return
            raise
        mid = delivery.message_id
        arrival = _Arrival(self._generation, delivery, raw)
        with self._state:
            remembered = self._acked.get(mid)
            again = remembered is not None and remembered == arrival.digest
            if not again:
                self._latest[mid] = arrival
                self._queue.put(arrival)
        if again:
            self.write(wire.ack_frame(raw))

    def on_notice(self, text: str) -> None:
        """An error answer to one of our frames, or ``endOfTopic``: nothing to act on."""

    def on_disconnect(self) -> None:
        with self._state:
            self._generation += 1
            self._latest.clear()

    def on_reconnect(self, ws: websocket.WebSocket) -> None:
        pass

    def on_fail(self, error: StreamError) -> None:
        self._queue.put(None)


def _trim(memory: collections.OrderedDict[MessageId, _T]) -> None:
    while len(memory) > ACK_MEMORY:
        memory.popitem(last=False)
