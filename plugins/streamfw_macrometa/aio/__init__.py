"""The macrometa transport on asyncio: REST and WebSocket on one ``aiohttp.ClientSession``.

``streamfw.aio.connect("macrometa://...")`` runs it natively (``TransportSpec.async_factory``
is ``AsyncMacrometaTransport.from_config``). It drives the same sans-I/O protocol objects
(``streamfw_macrometa.protocol``) and admin operations (``streamfw_macrometa.admin``) as the
threaded transport, so both follow one set of rules; docs/macrometa.md.

* ``session``: the shared session and its TLS context;
* ``rest``: REST calls (retries, deadline, size limit);
* ``link``: one WebSocket session (connect, read and writer tasks, reconnect, silence);
* ``producer``, ``consumer``: the links driving the protocol objects;
* ``waiters``: tasks waiting for a condition;
* ``transport``: the ``AsyncTransport``.
"""

from streamfw_macrometa.aio.transport import AsyncMacrometaTransport

__all__ = ["AsyncMacrometaTransport"]
