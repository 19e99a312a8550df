"""The consumer side of the protocol, sans-I/O: acks and nacks of whichever copy, and the
duplicate filter.

``ack`` and ``nack`` take a message id and act on the *message*, whichever copy the
application holds, as the loopback broker does:

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
silently and never shown (``Reply``). That filter matches the id *and* a digest of the message
(publish time, key, properties, payload): an id alone never drops a delivery, since ids repeat
when a server restarts without its data.

Pull mode (``pullMode=true``, docs/protocol.md §15.5): the server sends only what ``permit``
frames allowed. The protocol counts what the application *wants* (asked for through
``request`` and not handed out yet, as loopback does) and the permits granted on the current
connection and not yet used by a delivery. ``permits()`` asks for the difference between what
is wanted and what is on its way (permits unused plus copies queued that will be handed out),
so a copy that is not handed out (an older copy, a duplicate of an acked message, a queued
copy an ack or nack dropped) is asked for again, and the application never holds more than it
asked for. Permits die with the connection (the WebSocket proxy keeps them per session):
``connected()`` asks again for everything still wanted.
"""

from __future__ import annotations

import collections
from typing import TypeVar

import attrs

from streamfw.errors import LocalProtocolError
from streamfw.message import MessageId
from streamfw_macrometa import wire
from streamfw_macrometa.protocol.deliveries import Arrival, Deliveries, Event, Handout, Reply

ACK_MEMORY = 100_000  # acked messages remembered; also bounds the handed-out bookkeeping
_T = TypeVar("_T")


@attrs.define
class _Copy:
    """The newest copy of a message handed to the application, not yet acked."""

    raw_id: str  # the id exactly as the broker sent it: acks and nacks echo it
    generation: int  # the connection it came over
    digest: int
    nacked: bool = False


class ConsumerProtocol(Deliveries):
    """One consumer session's state; see ``Deliveries`` and the module docstring."""

    def __init__(self, stream: str, what: str, *, pull: bool = False) -> None:
        super().__init__(stream, what)
        self.pull = pull  # pull mode: the server sends only what permit frames allowed
        self._wanted = 0  # pull mode: asked for by the application, not handed out yet
        self._granted = 0  # pull mode: permits sent on this connection, not used yet
        self._handed: collections.OrderedDict[MessageId, _Copy] = collections.OrderedDict()
        self._acked: collections.OrderedDict[MessageId, int] = collections.OrderedDict()

    # --------------------------------------------------------------------------- pull mode

    def request(self, messages: int) -> str | None:
        """Have ``messages`` asked for, counting those asked for and not handed out yet; the
        ``Permit`` frame to write now, if any. A no-op outside pull mode."""
        if self.pull and messages > self._wanted:
            self._wanted = min(messages, wire.INT32_MAX)  # a Java int at the server
        return self.permits()

    def permits(self) -> str | None:
        """The ``Permit`` frame that makes what is on its way cover what is wanted, if it
        does not; call it after anything that may drop a queued copy or use a permit."""
        missing = self._wanted - self._granted - len(self._latest)
        if not self.pull or missing <= 0:
            return None
        self._granted += missing
        return wire.Permit(missing).encode()

    def connected(self) -> str | None:
        """A new connection is up, nothing written on it yet: the ``Permit`` frame asking
        again for what is still wanted (the old connection's permits died with it)."""
        self._granted = 0
        return self.permits()

    def disconnected(self) -> None:
        super().disconnected()
        self._granted = 0

    def receive_frame(self, frame: wire.ServerFrame) -> Event:
        if self.pull and isinstance(frame, wire.MessageFrame) and self._granted:
            self._granted -= 1  # each delivery uses a permit, whatever becomes of it
        return super().receive_frame(frame)

    def _arrived_again(self, arrival: Arrival) -> Reply | None:
        remembered = self._acked.get(arrival.frame.delivery.message_id)
        if remembered is not None and remembered == arrival.digest:
            return Reply(wire.ack_frame(arrival.frame.raw_id))
        return None

    def _hand_out(self, arrival: Arrival) -> Handout:
        mid = arrival.frame.delivery.message_id
        self._acked.pop(mid, None)  # (another message under a reused id)
        self._handed[mid] = _Copy(arrival.frame.raw_id, arrival.generation, arrival.digest)
        self._handed.move_to_end(mid)
        _trim(self._handed)
        if self._wanted:
            self._wanted -= 1
        return Handout(arrival.frame.delivery)

    def ack(self, message_id: MessageId) -> str | None:
        """Ack a message handed out; the frame to write now, if any (else it is acked when
        the broker sends it again). Acking twice is allowed.

        Raises:
            LocalProtocolError: the message was never handed out here.
        """
        copy = self._handed.pop(message_id, None)
        if copy is None:
            if message_id in self._acked:
                return None  # acks are idempotent
            raise LocalProtocolError(f"{message_id} was not delivered to {self.what}")
        self._acked[message_id] = copy.digest
        self._acked.move_to_end(message_id)
        _trim(self._acked)
        raw = self._held_here(message_id, copy, nacked_counts=True)
        return None if raw is None else wire.ack_frame(raw)

    def nack(self, message_id: MessageId) -> str | None:
        """Hand a message back; the frame to write, if the broker holds it here.

        Raises:
            LocalProtocolError: the message was never handed out here.
        """
        copy = self._handed.get(message_id)
        if copy is None:
            if message_id in self._acked:
                return None
            raise LocalProtocolError(f"{message_id} was not delivered to {self.what}")
        raw = self._held_here(message_id, copy, nacked_counts=False)
        copy.nacked = True
        return None if raw is None else wire.Nack(raw).encode()

    def _held_here(self, mid: MessageId, copy: _Copy, *, nacked_counts: bool) -> str | None:
        """The raw id to ack/nack ``mid`` with on the current connection, if the broker sent
        it over this one; drops the copies queued so far."""
        queued = self._latest.get(mid)
        if copy.generation == self.generation and (nacked_counts or not copy.nacked):
            raw = copy.raw_id
        elif queued is not None and queued.digest == copy.digest:
            raw = queued.frame.raw_id  # arrived again since: the copy the broker holds
        else:
            return None
        self._latest.pop(mid, None)
        return raw


def _trim(memory: collections.OrderedDict[MessageId, _T]) -> None:
    while len(memory) > ACK_MEMORY:
        memory.popitem(last=False)
