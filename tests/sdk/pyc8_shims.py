"""Process-local shims that let the unmodified pyC8 reach a local emulator.

Run by pyC8's own virtualenv. ``install()`` must come before pyC8 (or websocket-client) opens
a connection. Nothing on the machine changes and the SDK's files are untouched:

* name resolution: ``socket.getaddrinfo`` answers names starting with ``api-`` with
  ``$STREAMFW_SDK_RESOLVE_TO`` (default ``127.0.0.1``), because pyC8 always prepends ``api-``
  to the host it is given (``api-localhost`` is in no resolver);
* the port: ``C8Client.set_port`` forces 443 for https; it becomes a no-op so the ``port=``
  given to the constructor is kept.

See docs/emulator-sdks.md, sections 3 and 4.
"""

from __future__ import annotations

import os
import socket
from typing import Any


def install() -> None:
    real_getaddrinfo = socket.getaddrinfo
    resolve_to = os.environ.get("STREAMFW_SDK_RESOLVE_TO", "127.0.0.1")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode("ascii")
        if isinstance(host, str) and host.startswith("api-"):
            host = resolve_to
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]

    from c8 import C8Client

    def keep_given_port(self: C8Client) -> None:
        """Replacement for ``C8Client.set_port``: keep ``self._port`` (set from ``port=``)."""

    C8Client.set_port = keep_given_port  # type: ignore[method-assign]
