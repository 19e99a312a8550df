"""The ``macrometa://`` transport: Macrometa GDN streams over REST and WebSocket.

``streamfw.connect("macrometa://play.paas.macrometa.io", api_key=..., fabric="_system")``.
The ``macrometa+https://`` and ``macrometa+http://`` schemes reach an exact host (a private
gateway, or the streamfw emulator). See docs/macrometa.md.

Besides the transports, this plugin contributes the ``streamfw emulator`` command and the
``macrometa`` (a fresh emulator) and ``gdn`` (a real account) test harnesses.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from streamfw.api import CommandSpec, TransportConfig, TransportSpec
from streamfw.extras import missing
from streamfw.hookspecs import hookimpl
from streamfw_macrometa.config import SCHEMES, InsecureTLSWarning, Secret, Settings
from streamfw_macrometa.transport import MacrometaTransport

if TYPE_CHECKING:
    from streamfw.aio.spi import AsyncTransport
    from streamfw.testing.harness import HarnessSpec

__all__ = ["InsecureTLSWarning", "MacrometaTransport", "Secret", "Settings"]

_SUMMARIES = {
    "macrometa": "Macrometa GDN (https://api-<host>)",
    "macrometa+https": "Macrometa API over TLS at exactly this host",
    "macrometa+http": "Macrometa API over plain HTTP at exactly this host (emulator)",
}


@hookimpl
def streamfw_register_transports(register: Callable[[TransportSpec], None]) -> None:
    for scheme in SCHEMES:
        register(
            TransportSpec(
                scheme,
                MacrometaTransport.from_config,
                _SUMMARIES[scheme],
                async_factory=_open_async,
            )
        )


async def _open_async(config: TransportConfig) -> AsyncTransport:
    """The native asyncio transport (imported on first use: aiohttp is not cheap to load)."""
    from streamfw_macrometa.aio import AsyncMacrometaTransport

    return await AsyncMacrometaTransport.from_config(config)


@hookimpl
def streamfw_register_commands(register: Callable[[CommandSpec], None]) -> None:
    register(
        CommandSpec(
            "emulator",
            "run a local Macrometa GDN streams emulator",
            _emulator_arguments,
            _emulator_run,
        )
    )


@hookimpl
def streamfw_register_harnesses(register: Callable[[HarnessSpec], None]) -> None:
    from streamfw.testing.harness import HarnessSpec
    from streamfw_macrometa.testing import GDN_KEY_ENV, GDN_URL_ENV, MacrometaHarness, gdn_harness

    register(HarnessSpec("macrometa", MacrometaHarness, "macrometa+http:// on a fresh emulator"))
    register(HarnessSpec("gdn", gdn_harness, f"a real GDN given ${GDN_URL_ENV} and ${GDN_KEY_ENV}"))


def _emulator_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from streamfw_macrometa.emulator.command import add_arguments
    except ModuleNotFoundError as exc:  # aiohttp missing: say how to get it, in --help too
        reason = missing(exc, "streamfw emulator")
        parser.description = str(reason)
        # The CLI's mark of a command that cannot run (streamfw.cli.UNAVAILABLE, not imported:
        # discovery loads this module for every connect): it reports ``reason`` whatever
        # options were given, instead of "unrecognized arguments: --port 8080".
        parser.set_defaults(unavailable=reason)
    else:
        add_arguments(parser)


def _emulator_run(args: argparse.Namespace) -> int:
    from streamfw_macrometa.emulator.command import run

    return run(args)
