"""Hook specifications: what a streamfw plugin may implement.

A plugin is a module (or object) registered under the ``streamfw`` entry-point group. It
implements any of the hooks; each receives a ``register`` callable and calls it once per
transport, codec stage, CLI command or test harness it provides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from streamfw.api import CommandSpec, TransportSpec
    from streamfw.codec import CodecSpec
    from streamfw.testing.harness import HarnessSpec

hookspec = pluggy.HookspecMarker("streamfw")
hookimpl = pluggy.HookimplMarker("streamfw")


@hookspec
def streamfw_register_transports(register: Callable[[TransportSpec], None]) -> None:
    """Call ``register`` once for each transport this plugin provides (name = URL scheme)."""


@hookspec
def streamfw_register_codecs(register: Callable[[CodecSpec], None]) -> None:
    """Call ``register`` once for each codec stage this plugin provides."""


@hookspec
def streamfw_register_commands(register: Callable[[CommandSpec], None]) -> None:
    """Call ``register`` once for each ``streamfw`` CLI command this plugin provides."""


@hookspec
def streamfw_register_harnesses(register: Callable[[HarnessSpec], None]) -> None:
    """Call ``register`` once for each test harness (a transport to run the contract kit,
    the state machine and ``streamfw_harness`` tests on) this plugin provides."""
