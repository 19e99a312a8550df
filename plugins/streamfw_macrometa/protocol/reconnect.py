"""How long one reconnect may go on, sans-I/O; the driver passes the time in.

A reconnect tries until ``deadline`` seconds after the connection was lost, each attempt
getting at most ``timeout`` seconds and no more than what is left. Once the server has
answered that it still holds our previous session (409, ``SubscriptionBusy``), the attempts
go on until ``busy_deadline``: the server lets go once it notices that session is dead, which
may take longer than other failures deserve. The driver waits between attempts as
``failed`` says (a backoff it computes, cut to what is left); the last try comes at the limit.
"""

from __future__ import annotations


class Reconnecting:
    """One reconnect's attempts and limit; see the module docstring."""

    def __init__(self, *, deadline: float, busy_deadline: float, now: float) -> None:
        self.start = now
        self.attempts = 0
        self._limit = now + deadline
        self._busy_limit = now + max(deadline, busy_deadline)

    @property
    def span(self) -> float:
        """How long this reconnect may last, as things stand (for the give-up message)."""
        return self._limit - self.start

    def attempt(self, now: float, timeout: float) -> float:
        """Count an attempt; the time it may take to connect."""
        self.attempts += 1
        return max(0.1, min(timeout, self._limit - now))

    def failed(self, now: float, *, busy: bool, backoff: float) -> float | None:
        """An attempt failed (``busy``: the server still holds our session); how long to wait
        before the next one, or None to give up."""
        if busy:
            # Kept once seen: a later attempt that merely times out (its budget is small near
            # the end) says nothing new about the session still held.
            self._limit = self._busy_limit
        left = self._limit - now
        if left <= 0.05:
            return None
        return min(backoff, left)
