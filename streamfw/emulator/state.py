"""What the running emulator holds: one broker per fabric, its sockets and its timer.

Everything here runs on the emulator's event loop thread, which serialises every broker
call, so the brokers need no lock. After each call ``FabricHost.call`` routes the broker's
events (a delivery becomes a frame queued on the consumer's socket; a closed consumer or
producer closes its socket) and re-arms one ``loop.call_at`` for ``broker.next_deadline()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

import attrs

from streamfw.broker import ActiveChanged, Broker, ConsumerClosed, Deliver, ProducerClosed
from streamfw.emulator.auth import Authenticator
from streamfw.wire import delivery_frame

T = TypeVar("T")
log = logging.getLogger("streamfw.emulator")

TTL_SWEEP = 1.0  # seconds between message-TTL sweeps while a TTL is set
CLOSE_GOING_AWAY = 1001


class Session(Protocol):
    """A WebSocket seen from the broker side."""

    def deliver(self, frame: str) -> None:
        """Queue a text frame; never blocks."""

    def close_soon(self, code: int, reason: str) -> None:
        """Close the socket after the frames already queued, without waiting."""

    async def close_now(self, code: int, reason: str) -> None:
        """Close the socket at once (shutdown)."""


class FabricHost:
    """One fabric: a broker, the sockets attached to it by broker id, and its timer."""

    def __init__(
        self, name: str, clock: Callable[[], float], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.name = name
        self.broker = Broker(clock=clock)
        self.sessions: dict[int, Session] = {}
        self._clock = clock
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: float | None = None

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (which uses the broker), then route events and re-arm the timer."""
        try:
            return fn()
        finally:
            self.route()
            self.reschedule()

    def route(self) -> None:
        for event in self.broker.events():
            if isinstance(event, Deliver):
                session = self.sessions.get(event.consumer)
                log.debug(
                    "fabric %s: deliver %s to consumer %d%s",
                    self.name,
                    event.delivery.message_id,
                    event.consumer,
                    "" if session else " (no socket: dropped)",
                )
                if session is not None:
                    session.deliver(delivery_frame(event.delivery))
            elif isinstance(event, (ConsumerClosed, ProducerClosed)):
                key = event.consumer if isinstance(event, ConsumerClosed) else event.producer
                session = self.sessions.pop(key, None)
                if session is not None:
                    session.close_soon(CLOSE_GOING_AWAY, event.reason)
            elif isinstance(event, ActiveChanged):
                # Pulsar's WebSocket API has no frame for this: standbys just get nothing.
                log.debug(
                    "fabric %s: consumer %d active=%s", self.name, event.consumer, event.active
                )

    def tick(self) -> None:
        """Run due timers now (also what ``Emulator.poke`` does)."""
        self.call(self.broker.tick)

    def reschedule(self) -> None:
        due = self.broker.next_deadline()
        if self.broker.message_ttl:  # TTL expiry has no deadline of its own: sweep
            sweep = self._clock() + TTL_SWEEP
            due = sweep if due is None else min(due, sweep)
        if due == self._timer_due and self._timer is not None:
            return
        self.cancel_timer()
        if due is not None:
            delay = max(due - self._clock(), 0.0)
            self._timer_due = due
            self._timer = self._loop.call_at(self._loop.time() + delay, self._fire)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_due = None

    def _fire(self) -> None:
        self._timer = None
        self._timer_due = None
        self.tick()


@attrs.define(eq=False)
class ServerState:
    """Configuration and live state shared by every handler."""

    auth: Authenticator
    fabrics: dict[str, FabricHost]
    auto_create: bool
    max_connections: int
    open_connections: int = 0
    sockets: set[Session] = attrs.Factory(set)
