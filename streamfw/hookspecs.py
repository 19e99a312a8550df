"""Hook specifications: what a streamfw plugin may implement.

A plugin is a module (or object) registered under the ``streamfw`` entry-point group. It
implements one or both hooks; each receives a ``register`` callable and calls it once per
transport or codec stage it provides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from streamfw.api import TransportSpec
    from streamfw.codec import CodecSpec

hookspec = pluggy.HookspecMarker("streamfw")
hookimpl = pluggy.HookimplMarker("streamfw")


@hookspec
def streamfw_register_transports(register: Callable[[TransportSpec], None]) -> None:
    """Call ``register`` once for each transport this plugin provides (name = URL scheme)."""


@hookspec
def streamfw_register_codecs(register: Callable[[CodecSpec], None]) -> None:
    """Call ``register`` once for each codec stage this plugin provides."""
