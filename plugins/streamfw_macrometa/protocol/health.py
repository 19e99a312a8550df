"""When a connection is unhealthy, sans-I/O: runs of unreadable frames, and silence.

The driver passes the time in (``now``, seconds on a monotonic clock of its choice).
"""

from __future__ import annotations

import enum
import math


class BadFrameRun:
    """Unreadable frames from the server, counted; a run of them lasting ``limit`` seconds
    means give up.

    The run starts at the first unreadable frame after a readable one (or after ``limit``
    seconds of a connection without any unreadable frame) and ends at the next readable frame.
    Only time connected counts as such a quiet spell: the time spent closing a connection,
    waiting to reconnect and connecting again is no sign that the server got better, so a
    server answering every connection with junk is given up ``limit`` after its first junk
    however long the reconnects take.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.count = 0  # every unreadable frame so far, for monitoring
        self._first: float | None = None
        self._frames = 0  # in the run
        self._quiet_since = 0.0  # the last unreadable frame, or the connect after it

    def readable(self) -> None:
        """A frame was read: the run (if any) is over."""
        self._first = None
        self._frames = 0

    def connected(self, now: float) -> None:
        """A new connection is up: a quiet spell that ends a run counts from here."""
        self._quiet_since = now

    def unreadable(self, now: float) -> bool:
        """Count an unreadable frame; whether the run has lasted ``limit`` (give up)."""
        self.count += 1
        first = self._first if self.length(now) else None
        if first is None:  # a new run
            self._first = first = now
            self._frames = 0
        self._frames += 1
        self._quiet_since = now
        return now - first >= self.limit

    def length(self, now: float) -> int:
        """Unreadable frames in the run going on at ``now``; 0 if none is."""
        if self._first is None or now - self._quiet_since > self.limit:
            return 0
        return self._frames

    def left(self, now: float) -> float:
        """Seconds until the run going on at ``now`` lasts ``limit``; infinity if none is."""
        if self._first is None or not self.length(now):
            return math.inf
        return max(0.0, self._first + self.limit - now)


class Silence(enum.Enum):
    """What a quiet connection calls for."""

    PING = "ping"  # nothing heard for ping_interval: ask
    DEAD = "dead"  # no answer for ping_interval + timeout: reconnect


class Liveness:
    """Silence on a connection: a ping after ``ping_interval`` seconds without a frame, and
    the connection declared dead ``timeout`` seconds later if still nothing came."""

    def __init__(self, ping_interval: float, timeout: float, now: float) -> None:
        self.ping_interval = ping_interval
        self.timeout = timeout
        self.connected(now)

    def connected(self, now: float) -> None:
        """A new connection starts afresh."""
        self._seen = self._pinged = now

    def heard(self, now: float) -> None:
        """A frame arrived."""
        self._seen = now

    def check(self, now: float) -> Silence | None:
        """What the silence so far calls for; a ``PING`` is counted as sent."""
        if now - self._seen >= self.ping_interval + self.timeout:
            return Silence.DEAD
        if now - max(self._seen, self._pinged) >= self.ping_interval:
            self._pinged = now
            return Silence.PING
        return None
