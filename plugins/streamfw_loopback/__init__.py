"""The ``loopback://`` transport: the sans-I/O broker in this process, no network.

``loopback://name`` names a broker instance; clients of the same name in one process share it,
and it lives as long as at least one of them is open. ``loopback://`` is ``loopback://default``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from streamfw.api import TransportConfig, TransportSpec
from streamfw.hookspecs import hookimpl
from streamfw_loopback.transport import LoopbackTransport

if TYPE_CHECKING:
    from streamfw.aio.spi import AsyncTransport
    from streamfw.testing.harness import HarnessSpec

__all__ = ["LoopbackTransport"]


@hookimpl
def streamfw_register_transports(register: Callable[[TransportSpec], None]) -> None:
    register(
        TransportSpec(
            "loopback",
            LoopbackTransport.from_config,
            "in-process, no network",
            async_factory=_open_async,
        )
    )


async def _open_async(config: TransportConfig) -> AsyncTransport:
    # imported here: a sync program never loads the asyncio side
    from streamfw_loopback.aio import AsyncLoopbackTransport

    return await AsyncLoopbackTransport.from_config(config)


@hookimpl
def streamfw_register_harnesses(register: Callable[[HarnessSpec], None]) -> None:
    from streamfw.testing.harness import HarnessSpec, LoopbackHarness

    register(HarnessSpec("loopback", LoopbackHarness, "a fresh in-process broker, manual clock"))
