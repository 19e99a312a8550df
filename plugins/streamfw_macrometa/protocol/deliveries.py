"""What consumers and readers share, sans-I/O: arrivals, copies, connection generations.

The broker may send one message more than once: again after an ack timeout, after a nack,
after a reconnect. Each arrival is a *copy*. The driver queues every ``Arrived`` copy and, when
the application asks for a message, offers the next one to ``take``: it hands out the newest
copy of a message and skips older ones still queued, and a copy queued on a connection that
has since dropped (the broker sends it again on the new one). ``disconnected()`` starts a new
connection *generation*.
"""

from __future__ import annotations

import attrs

from streamfw.message import Delivery, MessageId
from streamfw_macrometa import wire


def digest(delivery: Delivery) -> int:
    """What tells two messages with one id apart: publish time, key, properties, payload.

    Python's own hash: digests are compared only within this process, where it is keyed
    (SipHash with a per-process key, so no sender can aim for a collision) and 64 bits wide;
    it costs a quarter of a cryptographic digest per message, and the acked-message memory
    holds ``ACK_MEMORY`` of them.
    """
    props = tuple(sorted(delivery.properties.items()))
    return hash((delivery.publish_time, delivery.key, props, delivery.payload))


@attrs.define(eq=False)
class Arrival:
    """One copy of a message, as it arrived over connection ``generation``."""

    generation: int
    frame: wire.MessageFrame
    _digest: int | None = None

    @property
    def delivery(self) -> Delivery:
        return self.frame.delivery

    @property
    def raw_id(self) -> str:
        return self.frame.raw_id

    @property
    def digest(self) -> int:
        if self._digest is None:
            self._digest = digest(self.frame.delivery)
        return self._digest


@attrs.define
class Arrived:
    """Queue ``arrival``; offer it to ``take`` when the application asks for a message."""

    arrival: Arrival


@attrs.define
class Reply:
    """Write ``frame`` (e.g. the ack of a copy of a message acked already)."""

    frame: str


@attrs.define
class Notice:
    """The server answered a frame of ours with an error, or told whether the topic ended;
    nothing to act on (what could not be acked is sent again by the broker)."""

    frame: wire.ServerError | wire.EndOfTopic


Event = Arrived | Reply | Notice


@attrs.define
class Handout:
    """Give ``delivery`` to the application; write ``frame`` first if there is one."""

    delivery: Delivery
    frame: str | None = None


class Deliveries:
    """The bookkeeping of one consumer or reader session; see the module docstring."""

    def __init__(self, stream: str, what: str) -> None:
        self.stream = stream
        self.what = what  # e.g. "reader on stream 'orders'": used in every error
        self.generation = 0
        self._latest: dict[MessageId, Arrival] = {}  # queued message -> its newest copy

    def parse(self, text: str | bytes) -> wire.ServerFrame:
        """Read a frame from the server; touches no state (drivers may call it unlocked).

        Raises:
            FrameError: the frame cannot be read (what could not be read stays with the
                broker, which sends it again after an ack timeout or a reconnect).
        """
        return wire.parse_server_frame(self.stream, text)

    def receive(self, text: str | bytes) -> Event:
        """``receive_frame(parse(text))``."""
        return self.receive_frame(self.parse(text))

    def receive_frame(self, frame: wire.ServerFrame) -> Event:
        if not isinstance(frame, wire.MessageFrame):
            return Notice(frame)
        arrival = Arrival(self.generation, frame)
        again = self._arrived_again(arrival)
        if again is not None:
            return again
        self._latest[frame.delivery.message_id] = arrival
        return Arrived(arrival)

    def _arrived_again(self, arrival: Arrival) -> Reply | None:
        """What to do instead of queueing ``arrival``, if anything."""
        return None

    def take(self, arrival: Arrival) -> Handout | None:
        """Offer a queued arrival: what to hand out, or None to skip it (a newer copy is
        queued behind it, it came over a dropped connection, or it was acked/nacked since)."""
        if arrival.generation != self.generation:
            return None  # the broker sends it again on the new connection
        mid = arrival.frame.delivery.message_id
        if self._latest.get(mid) is not arrival:
            return None
        del self._latest[mid]
        return self._hand_out(arrival)

    def _hand_out(self, arrival: Arrival) -> Handout:
        return Handout(arrival.frame.delivery)

    def disconnected(self) -> None:
        """The connection is gone: whatever it brought is not handed out any more."""
        self.generation += 1
        self._latest.clear()
