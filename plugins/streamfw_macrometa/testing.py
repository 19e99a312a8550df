"""``MacrometaHarness``: the transport-independent contract tests, run through the emulator.

Each harness starts its own emulator (plain HTTP on 127.0.0.1, a free port) on a
``ManualClock``; ``advance`` moves that clock and runs the broker's timers at once.
"""

from __future__ import annotations

import weakref
from typing import Any

from streamfw.client import Client, connect
from streamfw.testing.harness import ManualClock


class MacrometaHarness:
    """A fresh emulator per harness; clients connect with ``macrometa+http://``."""

    name = "macrometa"
    settle = 0.2  # a frame crosses loopback TCP twice within this, with a wide margin

    def __init__(self, **options: Any) -> None:
        from streamfw.emulator import Emulator  # the emulator is an optional extra

        self.clock = ManualClock()
        self.emulator = Emulator.start(host="127.0.0.1", port=0, clock=self.clock)
        self.url = f"macrometa+http://127.0.0.1:{self.emulator.port}"
        self.options: dict[str, Any] = {
            "api_key": self.emulator.api_key,
            "extensions": True,  # the emulator understands subscriptionInitialPosition
            "timeout": 5.0,
            "reconnect_deadline": 5.0,
            **options,
        }
        self._clients: weakref.WeakSet[Client] = weakref.WeakSet()

    def client(self) -> Client:
        client = connect(self.url, **self.options)
        self._clients.add(client)
        return client

    def cut(self) -> None:
        """Drop every WebSocket of this harness's clients, as a failing network would; each
        link reconnects by itself (the state machine's ``cut`` rule)."""
        for client in list(self._clients):
            for link in list(getattr(client.transport, "_links", ())):
                link.drop()

    def advance(self, seconds: float) -> None:
        self.emulator.poke()
        self.clock.advance(seconds)
        self.emulator.poke()

    def close(self) -> None:
        self.emulator.stop()
