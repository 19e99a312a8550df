"""When a connection is unhealthy, sans-I/O: runs of unreadable frames, and silence.

The driver passes the time in (``now``, seconds on a monotonic clock of its choice).
"""

from __future__ import annotations

import enum


class BadFrameRun:
    """Unreadable frames from the server, counted; a run of them lasting ``limit`` seconds
    means give up.

    The run starts at the first unreadable frame after a readable one (or after ``limit``
    seconds without any unreadable frame) and ends at the next readable frame.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.count = 0  # every unreadable frame so far, for monitoring
        self._first: float | None = None
        self._last = 0.0

    def readable(self) -> None:
        """A frame was read: the run (if any) is over."""
        self._first = None

    def unreadable(self, now: float) -> bool:
        """Count an unreadable frame; whether the run has lasted ``limit`` (give up)."""
        self.count += 1
        if self._first is None or now - self._last > self.limit:
            self._first = now
        self._last = now
        return now - self._first >= self.limit


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
