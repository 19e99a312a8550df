"""The emulator's network edge: every TCP connection counted, junk dropped, reads bounded.

How it works. The listening socket hands each accepted connection to ``CountedHandler``,
aiohttp's own ``RequestHandler`` that also reports to a ``ConnectionLimiter`` when the
connection opens and closes. The limiter therefore counts connections at accept, whether or
not they ever send a request, and knows for each one:

* whether it is *trusted*: one of its requests carried valid credentials (an API key or JWT
  header, or a live one-time password on a WebSocket upgrade);
* whether it is *busy*: a request (or a WebSocket session) is being handled on it.

When an accepted connection takes the count over ``max_connections``, room is made at once:
the oldest untrusted connection goes (whatever it is doing: sending headers byte by byte, a
slow body to ``/_open/auth``, nothing at all); failing that, the oldest trusted connection
that is idle between keep-alive requests (its client simply reconnects). If every other
connection is a trusted one at work, the newcomer itself is over the limit: its first
request is answered 503 and the connection closed. So junk never locks out a client with
credentials, and the process never holds more sockets than the limit plus one.

Deadlines bound what is left: a new connection must complete its first request head within
``header_timeout``; a request body must arrive whole within ``body_timeout`` (checked by the
dispatcher, see ``routing``); a keep-alive connection idle for ``idle_timeout`` is closed
(aiohttp's ``keepalive_timeout``, which also bounds a later request head that never ends).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

import attrs
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("streamfw.emulator")

MAX_CONNECTIONS = 1024  # TCP connections, WebSockets included
HEADER_TIMEOUT = 10.0  # seconds from accept to a complete first request head
BODY_TIMEOUT = 30.0  # seconds to receive a whole request body (at most 1 MiB)
IDLE_TIMEOUT = 60.0  # seconds a keep-alive connection may wait for its next request
WS_HEARTBEAT = 20.0  # seconds of WebSocket silence before a ping; no pong in half that: dropped
# Pulsar's WebSocket proxy closes a session idle for webSocketSessionIdleTimeoutMillis, 300 s by
# default. Producers are pinged so that they are dropped after that much silence: pyC8 answers
# pings only inside recv(), which a producer calls only right after a send.
PULSAR_IDLE_TIMEOUT = 300.0
PRODUCER_HEARTBEAT = PULSAR_IDLE_TIMEOUT * 2 / 3  # ping, then half of it for the pong
# A close frame is a control frame: at most 125 bytes of payload (RFC 6455 section 5.5), two
# of them the status code, so a close reason holds at most 123 bytes of UTF-8.
MAX_CLOSE_REASON = 123
ACCEPT_BACKLOG = 32  # connections the kernel queues for accept()
# Descriptors kept free for the rest of the process. asyncio accepts up to a backlog of
# connections in one go before any is counted, and the ones evicted for them free their
# descriptors a loop turn later: two backlogs in flight, plus the process's own files.
FD_HEADROOM = 2 * ACCEPT_BACKLOG + 32


def close_reason(text: str) -> bytes:
    """``text`` as a WebSocket close reason: UTF-8, cut on a character boundary to fit.

    A reason must be valid UTF-8 (RFC 6455 section 5.5.1): cutting the bytes anywhere could
    split a character, and a strict client then fails the connection instead of reading it.
    """
    data = text.encode("utf-8", "replace")  # a lone surrogate becomes "?"
    if len(data) <= MAX_CLOSE_REASON:
        return data
    return data[:MAX_CLOSE_REASON].decode("utf-8", "ignore").encode()


@attrs.define(eq=False)
class Connection:
    """What the limiter knows about one accepted TCP connection."""

    transport: asyncio.BaseTransport | None  # None: already gone
    handler: RequestHandler | None = None  # None: not accepted through CountedHandler
    trusted: bool = False
    busy: int = 0  # requests (or a WebSocket session) being handled
    over_limit: bool = False  # accepted while every slot was in trusted use
    header_deadline: asyncio.TimerHandle | None = None

    def peer(self) -> str:
        name = self.transport.get_extra_info("peername") if self.transport else None
        return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else "?"


class ConnectionLimiter:
    """Counts accepted connections and makes room when a new one takes the count over.

    Args:
        max_connections: connections held open at most (plus, briefly, one over the limit
            that is told 503).
        header_timeout: seconds a new connection has to complete its first request head.
    """

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._open: dict[RequestHandler, Connection] = {}  # oldest first
        self.dropped = 0  # connections closed to make room or at a deadline

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        conn = Connection(transport, handler)
        conn.header_deadline = asyncio.get_running_loop().call_later(
            self.header_timeout, self._head_too_slow, conn
        )
        self._open[handler] = conn
        if len(self._open) > self.max_connections:
            self._make_room(conn)

    def closed(self, handler: RequestHandler) -> None:
        conn = self._open.pop(handler, None)
        if conn is not None:
            self._forget(conn)

    def _forget(self, conn: Connection) -> None:
        if conn.header_deadline is not None:
            conn.header_deadline.cancel()
            conn.header_deadline = None
        if conn.handler is not None:
            self._open.pop(conn.handler, None)

    def request_started(self, request: web.BaseRequest) -> Connection:
        """Note that ``request`` is being handled; its head arrived in time."""
        conn = self._open.get(request.protocol)
        if conn is None:  # dropped meanwhile, or not accepted through CountedHandler
            conn = Connection(request.transport)
        if conn.header_deadline is not None:
            conn.header_deadline.cancel()
            conn.header_deadline = None
        if conn.over_limit and len(self._open) <= self.max_connections:
            conn.over_limit = False  # room was made since it was accepted
        conn.busy += 1
        return conn

    @staticmethod
    def request_finished(conn: Connection) -> None:
        conn.busy -= 1

    def _make_room(self, new: Connection) -> None:
        others = [c for c in self._open.values() if c is not new]
        victim = next((c for c in others if not c.trusted), None)
        if victim is None:
            victim = next((c for c in others if not c.busy), None)
        if victim is None:
            new.over_limit = True
            log.warning(
                "%d connections open (the limit), all in use with credentials: "
                "the next request from %s gets 503",
                len(others),
                new.peer(),
            )
            return
        self.drop(victim, "to make room for a new connection")

    def _head_too_slow(self, conn: Connection) -> None:
        conn.header_deadline = None
        if not conn.busy:
            self.drop(conn, f"no complete request head within {self.header_timeout:g} s")

    def drop(self, conn: Connection, why: str) -> None:
        """Close ``conn`` at once (no lingering: its descriptor is what we need back)."""
        self._forget(conn)  # now: the transport reports its end only on a later loop turn
        self.dropped += 1
        log.info(
            "dropped %s connection from %s %s",
            "trusted idle" if conn.trusted else "unauthenticated",
            conn.peer(),
            why,
        )
        if isinstance(conn.transport, asyncio.Transport):
            conn.transport.abort()


class CountedHandler(RequestHandler):
    """aiohttp's request handler, reporting its connection's life to a limiter."""

    __slots__ = ("_limiter",)

    def __init__(self, manager: Any, limiter: ConnectionLimiter, **options: Any) -> None:
        super().__init__(manager, **options)
        self._limiter = limiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._limiter.opened(self, transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: BaseException | None) -> None:
        self._limiter.closed(self)
        super().connection_lost(exc)


class CountingSite(web.BaseSite):
    """A TCP site whose connections are ``CountedHandler``s of one limiter."""

    __slots__ = ("_host", "_limiter", "_options", "_port")

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        limiter: ConnectionLimiter,
        options: dict[str, Any],
        ssl_context: Any = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host, self._port = host, port
        self._limiter = limiter
        self._options = options  # the RequestHandler options also given to the runner

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None

        def make_handler() -> CountedHandler:
            return CountedHandler(server, self._limiter, loop=loop, **self._options)

        tls: dict[str, Any] = {}
        if self._ssl_context is not None:
            # A connection is counted once its TLS handshake is done: bound the handshake
            # like a request head, or unfinished handshakes would hold uncounted sockets.
            tls = {"ssl": self._ssl_context, "ssl_handshake_timeout": self._limiter.header_timeout}
        self._server = await loop.create_server(
            make_handler,
            self._host,
            self._port,
            backlog=ACCEPT_BACKLOG,
            reuse_address=True,
            **tls,
        )


def usable_connections(requested: int) -> int:
    """``requested``, lowered to what the process's descriptor limit can really hold.

    Past ``RLIMIT_NOFILE`` the kernel refuses accept() itself ("out of system resource")
    and no request gets in at all, so the limit must be reached before the kernel's.
    """
    try:
        import resource
    except ImportError:  # not POSIX: nothing to ask
        return requested
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    room = max(soft - FD_HEADROOM, 1)
    if requested > room:
        log.warning(
            "max_connections %d lowered to %d: this process may open %d files "
            "(ulimit -n); raise that to serve more",
            requested,
            room,
            soft,
        )
        return room
    return requested


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; ``""`` (every interface) is not."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HostCheck:
    """Which ``Host`` headers a loopback-bound emulator answers (DNS rebinding defence).

    A web page can make a browser send requests to 127.0.0.1 under the page's own name once
    its DNS answer changes to 127.0.0.1; the ``Host`` header is what gives that away.
    Accepted: loopback names and addresses, the bound host, ``extra`` names, each also
    with the ``api-`` prefix the official SDKs put in front of the host they are given.
    """

    def __init__(self, bound: str, extra: tuple[str, ...] = ()) -> None:
        self._names = {"localhost", bound.strip("[]").lower(), *(n.lower() for n in extra)}

    def allows(self, header: str | None) -> bool:
        if header is None:  # HTTP/1.0 without Host: no browser sends that
            return True
        name = _hostname(header)
        if name.startswith("api-"):
            name = name[len("api-") :]
        return name in self._names or is_loopback(name)


def _hostname(header: str) -> str:
    """The name part of a Host header: ``[::1]:8080`` -> ``::1``, ``a:80`` -> ``a``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


@attrs.frozen
class Edge:
    """The edge settings request handlers need, stored in the application under ``EDGE``."""

    limiter: ConnectionLimiter
    body_timeout: float
    ws_heartbeat: float | None  # None: never ping
    hosts: HostCheck | None  # None: any Host header (bound to a non-loopback address)
    max_frame: int  # bytes: the largest WebSocket message and REST body read

    def heartbeat(self, segments: list[str]) -> float | None:
        """The ping interval of a WebSocket at ``segments`` (``_ws/ws/v2/<kind>/...``).

        Consumers and readers hold subscriptions others may be waiting for: ``ws_heartbeat``.
        Producers hold nothing anyone waits for: never dropped sooner than Pulsar would.
        """
        if self.ws_heartbeat is None or segments[3:4] != ["producer"]:
            return self.ws_heartbeat
        return max(self.ws_heartbeat, PRODUCER_HEARTBEAT)


EDGE: web.AppKey[Edge] = web.AppKey("streamfw_emulator_edge", Edge)
