"""What the running emulator holds: one broker per fabric, its sockets and its timer.

Everything here runs on the emulator's event loop thread, which serialises every broker
call, so the brokers need no lock. After each call ``FabricHost.call`` routes the broker's
events (a delivery becomes a frame queued on the consumer's socket; a closed consumer or
producer closes its socket) and re-arms one ``loop.call_at`` for ``broker.next_deadline()``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

import attrs

from streamfw.api import first_ledger_now
from streamfw.broker import (
    ActiveChanged,
    Broker,
    ConsumerClosed,
    Deliver,
    Limits,
    ProducerClosed,
    Rules,
)
from streamfw_macrometa.emulator.auth import Authenticator
from streamfw_macrometa.wire import delivery_frame

T = TypeVar("T")
log = logging.getLogger("streamfw.emulator")

TTL_SWEEP = 1.0  # seconds between message-TTL sweeps while a TTL is set
CLOSE_GOING_AWAY = 1001
RELEASE_AFTER = 32 * 2**20  # payload bytes dropped before the heap is handed back (release_memory)
RELEASE_DELAY = 1.0  # seconds: one hand-back covers every drop in that time


class Session(Protocol):
    """A WebSocket seen from the broker side."""

    def deliver(self, frame: str) -> None:
        """Queue a text frame; never blocks."""

    def deliver_message(self, frame: str) -> None:
        """Queue a delivery frame, which gives its broker permit back once written."""

    def close_soon(self, code: int, reason: str) -> None:
        """Close the socket after the frames already queued, without waiting."""

    async def close_now(self, code: int, reason: str) -> None:
        """Close the socket at once (shutdown)."""


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def release_memory() -> None:
    """Hand freed heap pages back to the operating system, where the C library can.

    The emulator's loop runs in a thread, whose glibc arena gives memory back only from its
    top: after a backlog of millions of payloads is cleared, the process kept ~1.2 KB per
    cleared 1 KiB message although Python had freed every object (docs/emulator.md).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class FabricHost:
    """One fabric: a broker, the sockets attached to it by broker id, and its timer.

    Args:
        name: the fabric's name.
        clock: wall-clock seconds for the broker.
        loop: the emulator's event loop (timers run on it).
        limits: the broker's caps (``streamfw.broker.Limits()`` by default).
        rules: the broker's behaviour choices (``streamfw.broker.Rules()`` by default:
            Pulsar's redelivery count and failover delay).
    """

    def __init__(
        self,
        name: str,
        clock: Callable[[], float],
        loop: asyncio.AbstractEventLoop,
        limits: Limits | None = None,
        rules: Rules | None = None,
    ) -> None:
        self.name = name
        self.broker = Broker(
            clock=clock, limits=limits, first_ledger=first_ledger_now(), rules=rules
        )
        self.sessions: dict[int, Session] = {}
        self._clock = clock
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: float | None = None
        self._freed_seen = 0
        self._release: asyncio.TimerHandle | None = None

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (which uses the broker), then route events and re-arm the timer."""
        try:
            return fn()
        finally:
            self.route()
            self.reschedule()
            if self.broker.freed - self._freed_seen >= RELEASE_AFTER and self._release is None:
                self._release = self._loop.call_later(RELEASE_DELAY, self._release_memory)

    def _release_memory(self) -> None:
        self._release = None
        self._freed_seen = self.broker.freed
        release_memory()

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
                    session.deliver_message(delivery_frame(event.delivery))
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
        # Keep a timer due no later: waking early is harmless (tick runs only what is due,
        # then re-arms), while re-arming on every call would push the TTL sweep back forever
        # on a fabric busier than one call per TTL_SWEEP.
        armed = self._timer_due if self._timer is not None else None
        if armed is not None and due is not None and armed <= due:
            return
        self._cancel_broker_timer()
        if due is not None:
            delay = max(due - self._clock(), 0.0)
            self._timer_due = due
            self._timer = self._loop.call_at(self._loop.time() + delay, self._fire)

    def cancel_timer(self) -> None:
        """Cancel every pending callback (the emulator is stopping)."""
        self._cancel_broker_timer()
        if self._release is not None:
            self._release.cancel()
            self._release = None

    def _cancel_broker_timer(self) -> None:
        # Not the memory hand-back: re-arming the broker timer on a call must not postpone it.
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_due = None

    def _fire(self) -> None:
        self._timer = None
        self._timer_due = None
        try:
            self.tick()
        except Exception:  # a bug of ours: say so; call() has re-armed the timer already
            log.exception("fabric %s: a broker timer failed", self.name)


@attrs.define(eq=False)
class ServerState:
    """Configuration and live state shared by every handler."""

    auth: Authenticator
    fabrics: dict[str, FabricHost]
    auto_create: bool
    max_connections: int
    open_connections: int = 0
    sockets: set[Session] = attrs.Factory(set)
