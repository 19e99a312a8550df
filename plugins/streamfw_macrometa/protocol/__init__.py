"""The client side of the Macrometa WebSocket protocol, sans-I/O (in the style of h11).

Each object holds one session's state and does no I/O: text frames in, typed events and
frames to write out. No socket, thread, lock, clock or future: a driver (the threaded link in
``ws.py``, an asyncio link) owns those, serialises calls, and passes the time in where a rule
needs it. Frames are read and built by ``streamfw_macrometa.wire`` alone. Events are attrs
classes made once per message, so they are not frozen (a frozen one takes about twice as long
to build); nothing changes them once made.

* ``producer``: contexts, the send window, receipts, the unconfirmed frames to resend;
* ``deliveries``: what consumers and readers share (copies, connection generations);
* ``consumer``: acks and nacks of whichever copy, the duplicate filter;
* ``reader``: the receiver-queue slot freed per message, the resume position;
* ``receiving``: which of the two a receiving session gets, and its name in errors;
* ``health``: when unreadable frames or silence call for a reconnect or for giving up;
* ``reconnect``: how long one reconnect goes on, and the wait between its attempts.
"""

from streamfw_macrometa.protocol.consumer import ConsumerProtocol
from streamfw_macrometa.protocol.deliveries import Arrival, Arrived, Handout, Notice, Reply
from streamfw_macrometa.protocol.health import BadFrameRun, Liveness, Silence
from streamfw_macrometa.protocol.producer import Confirmed, Failed, Outgoing, ProducerProtocol
from streamfw_macrometa.protocol.reader import ReaderProtocol
from streamfw_macrometa.protocol.receiving import receiving_protocol
from streamfw_macrometa.protocol.reconnect import Reconnecting

__all__ = [
    "Arrival",
    "Arrived",
    "BadFrameRun",
    "Confirmed",
    "ConsumerProtocol",
    "Failed",
    "Handout",
    "Liveness",
    "Notice",
    "Outgoing",
    "ProducerProtocol",
    "ReaderProtocol",
    "Reconnecting",
    "Reply",
    "Silence",
    "receiving_protocol",
]
