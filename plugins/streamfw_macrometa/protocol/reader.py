"""The reader side of the protocol, sans-I/O.

A reader frees its receiver-queue slot with an ``Ack`` frame (which acks nothing on a reader)
when the application takes a message; after a reconnect it resumes after the last message
taken (``resume_query``).
"""

from __future__ import annotations

from streamfw_macrometa import wire
from streamfw_macrometa.protocol.deliveries import Arrival, Deliveries, Handout


class ReaderProtocol(Deliveries):
    """One reader session's state; see ``Deliveries`` and the module docstring."""

    def __init__(self, stream: str, what: str) -> None:
        super().__init__(stream, what)
        self._last_taken: str | None = None  # raw id of the last message handed out

    def _hand_out(self, arrival: Arrival) -> Handout:
        self._last_taken = arrival.frame.raw_id
        return Handout(arrival.frame.delivery, wire.ack_frame(arrival.frame.raw_id))

    def resume_query(self) -> dict[str, str]:
        """Query parameters for the next connection: start after the last message taken."""
        if self._last_taken is None:
            return {}
        return wire.reader_resume_query(self._last_taken)
