"""The ``macrometa://`` transport: Macrometa GDN streams over REST and WebSocket.

``streamfw.connect("macrometa://play.paas.macrometa.io", api_key=..., fabric="_system")``.
The ``macrometa+https://`` and ``macrometa+http://`` schemes reach an exact host (a private
gateway, or the streamfw emulator). See docs/macrometa.md.
"""

from __future__ import annotations

from collections.abc import Callable

from streamfw.api import TransportSpec
from streamfw.hookspecs import hookimpl
from streamfw_macrometa.config import SCHEMES, InsecureTLSWarning, Secret, Settings
from streamfw_macrometa.transport import MacrometaTransport

__all__ = ["InsecureTLSWarning", "MacrometaTransport", "Secret", "Settings"]

_SUMMARIES = {
    "macrometa": "Macrometa GDN (https://api-<host>)",
    "macrometa+https": "Macrometa API over TLS at exactly this host",
    "macrometa+http": "Macrometa API over plain HTTP at exactly this host (emulator)",
}


@hookimpl
def streamfw_register_transports(register: Callable[[TransportSpec], None]) -> None:
    for scheme in SCHEMES:
        register(TransportSpec(scheme, MacrometaTransport.from_config, _SUMMARIES[scheme]))
