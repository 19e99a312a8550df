"""Test support for the macrometa transport: harnesses and the ``streamfw_emulator`` fixture.

``MacrometaHarness`` runs the transport-independent contract tests through the emulator: each
harness starts its own emulator (plain HTTP on 127.0.0.1, a free port) on a ``ManualClock``;
``advance`` moves that clock and runs the broker's timers at once; ``cut`` (``cut_aio`` for an
asyncio client) shuts down the sockets of its clients' WebSockets. ``GdnHarness`` runs them
against a real GDN account. Both are registered through ``streamfw_register_harnesses``
(``--streamfw-transports=macrometa,gdn``). This module is also a pytest plugin (entry point
``pytest11``) giving the session fixture ``streamfw_emulator``: one emulator on 127.0.0.1.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from streamfw.client import Client, connect
from streamfw.extras import Missing, missing
from streamfw.testing.harness import Harness, ManualClock

if TYPE_CHECKING:
    import streamfw.aio
    from streamfw_macrometa.emulator import Emulator

GDN_URL_ENV = "STREAMFW_GDN_URL"
GDN_KEY_ENV = "MACROMETA_API_KEY"


class MacrometaHarness:
    """A fresh emulator per harness; clients connect with ``macrometa+http://``."""

    name = "macrometa"
    settle = 0.2  # a frame crosses loopback TCP twice within this, with a wide margin

    def __init__(self, **options: Any) -> None:
        self.clock = ManualClock()
        self.emulator = emulator_class().start(host="127.0.0.1", port=0, clock=self.clock)
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
            drop_links(client.transport)

    async def cut_aio(self, client: streamfw.aio.Client) -> None:
        """``cut`` for an asyncio client made from ``url`` and ``options``; awaited on its
        event loop (the asyncio facade's ``cut``)."""
        drop_links(client.transport)

    def advance(self, seconds: float) -> None:
        self.emulator.poke()
        self.clock.advance(seconds)
        self.emulator.poke()

    def close(self) -> None:
        self.emulator.stop()


class GdnHarness:
    """A real GDN account. Its clock cannot be moved: ``advance`` waits that long instead."""

    name = "gdn"
    settle = 2.0

    def __init__(self, url: str) -> None:
        self.url = url

    def client(self) -> Client:
        return connect(self.url)  # the key comes from MACROMETA_API_KEY

    def advance(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        return None


def drop_links(transport: object) -> None:
    """Shut down the socket of each WebSocket link of a macrometa transport, threaded or
    asyncio; the links reconnect by themselves.

    Both transports keep their live links in ``_links`` (what ``close`` closes); reading it
    here, without a default, makes a renamed attribute fail the tests that cut instead of
    leaving them cutting nothing.
    """
    for link in list(getattr(transport, "_links")):  # noqa: B009  # not in the transport SPI
        link.drop()


def gdn_harness() -> Harness:
    """A ``GdnHarness`` from the environment; skips, saying what to set, without it."""
    url, key = os.environ.get(GDN_URL_ENV), os.environ.get(GDN_KEY_ENV)
    if not url or not key:
        pytest.skip(
            f"gdn: set {GDN_URL_ENV} (e.g. macrometa://play.paas.macrometa.io) and"
            f" {GDN_KEY_ENV} to run this against a real GDN"
        )
    return GdnHarness(url)


def emulator_class() -> type[Emulator]:
    """The emulator, imported on first use.

    Raises:
        Missing: its aiohttp is not installed; the message says how to install it.
    """
    try:
        from streamfw_macrometa.emulator import Emulator
    except ModuleNotFoundError as exc:
        raise missing(exc, "the streamfw emulator") from None
    return Emulator


@pytest.fixture(scope="session")
def streamfw_emulator() -> Iterator[Any]:
    """One emulator on 127.0.0.1 for the session (``.url``, ``.port``, ``.api_key``)."""
    try:
        emulator_type = emulator_class()
    except Missing as exc:
        hint = str(exc)
    else:
        with emulator_type.start(host="127.0.0.1", port=0) as emulator:
            yield emulator
        return
    pytest.fail(hint, pytrace=False)  # out of the except: no "during handling" traceback
