"""A harness gives transport-independent tests a broker to talk to and a clock to move.

The contract tests and the hypothesis state machine are written against ``Harness`` only, so
the same code runs on every transport whose plugin registers a ``HarnessSpec`` through the
``streamfw_register_harnesses`` hook (loopback does; so can a third-party transport).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from streamfw.client import Client, connect


class ManualClock:
    """A wall clock that moves only when told to; thread-safe."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._now += seconds


class Harness(Protocol):
    """One broker for one test.

    A harness that also has ``url`` and ``options`` (what ``connect()`` takes to reach its
    broker) runs the kit on the asyncio API too (``streamfw.testing.aio_facade``).

    Optional, for transports with connections: ``cut()`` drops every connection of the clients
    the harness made, as a failing network would (they reconnect by themselves), and
    ``async cut_aio(client)`` does the same for one ``streamfw.aio.Client`` made from ``url``
    and ``options``, awaited on its event loop. The state machine adds its ``cut`` rule on
    the sync API where there is ``cut``, on the asyncio API where there is ``cut_aio``.
    """

    name: str
    settle: float  # seconds to wait before concluding that nothing more will arrive

    def client(self) -> Client:
        """A new client on this harness's broker; the caller closes it."""

    def advance(self, seconds: float) -> None:
        """Move the broker's clock forward and let it act on what became due."""

    def close(self) -> None:
        """Release the broker."""


@attrs.frozen
class HarnessSpec:
    """What a plugin registers so its transport runs the kit: a name and a harness factory.

    Attributes:
        name: what ``--streamfw-transports`` selects it by.
        factory: builds a fresh ``Harness`` for one test; it may call ``pytest.skip`` when
            what it needs (a server, credentials) is not there, saying what to set.
        summary: one line for ``--help``.
    """

    name: str
    factory: Callable[[], Harness]
    summary: str = ""


class LoopbackHarness:
    """A fresh, uniquely named loopback broker on a manual clock."""

    name = "loopback"
    settle = 0.02

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.url = f"loopback://test-{uuid.uuid4().hex[:12]}"
        self.options: dict[str, Any] = {"clock": self.clock}
        self._anchor = connect(self.url, **self.options)  # keeps the broker alive

    def client(self) -> Client:
        return connect(self.url, **self.options)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)  # loopback consumers tick when they next receive

    def close(self) -> None:
        self._anchor.close()
