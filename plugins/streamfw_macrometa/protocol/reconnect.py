"""How long one reconnect may go on and how long it waits, sans-I/O; the driver passes the time in.

A reconnect tries until ``deadline`` seconds after the connection was lost, each attempt
getting at most ``timeout`` seconds and no more than what is left. Once the server has
answered that it still holds our previous session (409, ``SubscriptionBusy``), the attempts
go on until ``busy_deadline``: the server lets go once it notices that session is dead, which
may take longer than other failures deserve. Between attempts the driver waits as ``failed``
says; the last try comes at the limit.

Waits follow ``Backoff``: exponential from ``initial`` seconds, capped at ``cap``, with
jitter (Pulsar's client backs off the same way, from 100 ms). The first attempt after a cut
is made at once; after bad frames from the server (a ``BadFrameRun`` going on) it waits too,
and the run's length counts as attempts already failed: a server answering every connection
with junk is not reconnected to hundreds of times a second.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from streamfw_macrometa.protocol.health import BadFrameRun

_MAX_DOUBLINGS = 60  # the cap is reached long before; keeps 2**n a small number


class Backoff:
    """Waits growing from ``initial`` to ``cap`` seconds, each a random 50-100 % of its step."""

    def __init__(
        self, initial: float, cap: float, rng: Callable[[], float] = random.random
    ) -> None:
        self.initial = initial
        self.cap = cap
        self._rng = rng

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` failed, 1-based)."""
        step = min(self.cap, self.initial * 2.0 ** min(max(attempt, 1) - 1, _MAX_DOUBLINGS))
        return step * (0.5 + self._rng() / 2)


class Reconnecting:
    """One reconnect's attempts, waits and limit; see the module docstring.

    ``bad`` is the link's run of unreadable frames at the time the connection was lost.
    """

    def __init__(
        self,
        *,
        deadline: float,
        busy_deadline: float,
        backoff: Backoff,
        bad: BadFrameRun,
        now: float,
    ) -> None:
        self.start = now
        self.attempts = 0
        self._backoff = backoff
        self._limit = now + deadline
        self._busy_limit = now + max(deadline, busy_deadline)
        # Reconnects already made in this run of bad frames: they failed as surely as a
        # refused connect, and so count towards the backoff.
        self._failed_before = bad.length(now)
        # The run gives up at its end; waiting past it would only delay that.
        self._run_left = bad.left(now)

    @property
    def span(self) -> float:
        """How long this reconnect may last, as things stand (for the give-up message)."""
        return self._limit - self.start

    def first(self, now: float) -> float:
        """How long to wait before the first attempt: not at all after a cut; after bad
        frames, the backoff for the run so far, cut to the run's and this reconnect's ends."""
        if not self._failed_before:
            return 0.0
        wait = self._backoff.delay(self._failed_before)
        return max(0.0, min(wait, self._run_left, self._limit - now))

    def attempt(self, now: float, timeout: float) -> float:
        """Count an attempt; the time it may take to connect."""
        self.attempts += 1
        return max(0.1, min(timeout, self._limit - now))

    def failed(self, now: float, *, busy: bool) -> float | None:
        """An attempt failed (``busy``: the server still holds our session); how long to wait
        before the next one, or None to give up."""
        if busy:
            # Kept once seen: a later attempt that merely times out (its budget is small near
            # the end) says nothing new about the session still held.
            self._limit = self._busy_limit
        left = self._limit - now
        if left <= 0.05:
            return None
        return min(self._backoff.delay(self._failed_before + self.attempts), left)
