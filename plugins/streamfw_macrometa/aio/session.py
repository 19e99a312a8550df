"""The one ``aiohttp.ClientSession`` of an asyncio macrometa client, and its TLS settings.

REST calls and WebSockets share it (one connection pool, one TLS context). TLS follows
``Settings.verify`` as docs/macrometa.md says: ``True`` verifies against the system CAs, a
path against that CA bundle only, ``False`` does not verify (``config.parse`` warned
already). The ``Authorization`` header is added per request, never stored in the session, so
no repr of it shows a credential.
"""

from __future__ import annotations

import contextvars
import ssl
import types

import aiohttp

from streamfw_macrometa import gateway
from streamfw_macrometa.config import Settings

USER_AGENT = "streamfw-macrometa"
REFUSAL_DETAIL_BYTES = 4096  # of a refused WebSocket upgrade's body, kept for its error

# aiohttp raises on a refused upgrade without reading its body, which says why (e.g. "a
# consumer of another type is attached"); a trace hook reads its start into this variable,
# set in the task that connects.
refusal_detail: contextvars.ContextVar[str] = contextvars.ContextVar("refusal_detail")


async def _keep_refusal(
    session: aiohttp.ClientSession,
    context: types.SimpleNamespace,
    params: aiohttp.TraceRequestEndParams,
) -> None:
    response = params.response
    if response.status >= 400 and params.url.path.startswith(gateway.WS_ROOT):
        body = await response.content.read(REFUSAL_DETAIL_BYTES)
        refusal_detail.set(body.decode("utf-8", "replace"))


def ssl_context(settings: Settings) -> ssl.SSLContext | bool:
    """What aiohttp's ``ssl=`` takes for ``settings.verify``."""
    if settings.verify is False:
        return False
    if not settings.rest_url.startswith("https:") and not settings.ws_url.startswith("wss:"):
        return True  # no TLS at all: skip loading a CA bundle (~0.2 s)
    cafile = settings.verify if isinstance(settings.verify, str) else None
    return ssl.create_default_context(cafile=cafile)


def open_session(settings: Settings) -> aiohttp.ClientSession:
    """A session for one client; call on the event loop that will use it."""
    connector = aiohttp.TCPConnector(ssl=ssl_context(settings))
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_keep_refusal)
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        # limits are ours: one REST call's deadline (``timeout``), not aiohttp's 5 minutes
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=True,
        trust_env=False,
        trace_configs=[trace],
    )
