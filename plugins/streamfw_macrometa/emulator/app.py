"""The ``Emulator``: an aiohttp server for the REST and WebSocket routes, on its own thread.

How it works. ``Emulator.start`` creates an event loop in a daemon thread, serves one
aiohttp application on one port and returns once the socket listens. All request handlers,
broker calls and timers run on that loop, so each fabric's broker is only ever touched by one
thread. ``stop`` closes every WebSocket (1001, "emulator stopping"), stops the server and ends
the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import logging
import math
import re
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from streamfw.broker import Limits, Rules
from streamfw_macrometa import gateway
from streamfw_macrometa.emulator import rest, sockets
from streamfw_macrometa.emulator.auth import Authenticator, tenant_of_key
from streamfw_macrometa.emulator.edge import (
    BODY_TIMEOUT,
    EDGE,
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    WS_HEARTBEAT,
    ConnectionLimiter,
    CountingSite,
    Edge,
    HostCheck,
    is_loopback,
    usable_connections,
)
from streamfw_macrometa.emulator.routing import STATE, make_dispatcher
from streamfw_macrometa.emulator.state import CLOSE_GOING_AWAY, FabricHost, ServerState

log = logging.getLogger("streamfw.emulator")

__all__ = ["MAX_CONNECTIONS", "MAX_FRAME", "Emulator"]

MAX_FRAME = sockets.MAX_FRAME  # also the largest REST body (413 above it)
POKE_SETTLE = 0.01  # seconds poke() lets pending frames be handled before ticking
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class _AccessLogger(AbstractAccessLogger):
    """Method, path and status only: the query string may hold a one-time password."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d %.1fms", request.method, request.path, response.status, time * 1000
        )


class _RedactQueries(logging.Filter):
    """Keep secrets and client mistakes out of aiohttp's own error logs.

    aiohttp logs a malformed request at ERROR, with a traceback that quotes the offending line
    verbatim: a query string may hold a one-time password, a header an API key. A malformed
    request is the client's mistake, already answered 4xx: one debug line without the text.
    Anything else keeps its level, with query strings withheld.
    """

    _QUERY = re.compile(r"\?[^\s'\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            log.debug("answered a malformed request with %d (%s)", exc.code, type(exc).__name__)
            return False
        record.msg = self._QUERY.sub("?<withheld>", record.getMessage())
        record.args = ()
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self._QUERY.sub("?<withheld>", text)
        return True


_REDACT = _RedactQueries()


def _ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("TLS needs both a certificate file and a key file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class Emulator:
    """A running emulator. Build it with ``Emulator.start``; stop it with ``stop()``."""

    def __init__(self) -> None:  # use Emulator.start
        self.host = ""
        self.port = 0
        self.url = ""
        self.api_key = ""
        self.tenant = ""
        self.fabrics: tuple[str, ...] = ()
        self.max_frame_size = MAX_FRAME
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._state: ServerState | None = None
        self._limiter: ConnectionLimiter | None = None
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._limits: Limits | None = None
        self._rules: Rules | None = None

    @classmethod
    def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: Iterable[str] | None = None,
        tenant: str | None = None,
        fabrics: Iterable[str] = (gateway.DEFAULT_FABRIC,),
        tls_cert: str | None = None,
        tls_key: str | None = None,
        clock: Callable[[], float] | None = None,
        auto_create: bool = False,
        max_connections: int = MAX_CONNECTIONS,
        header_timeout: float = HEADER_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        ws_heartbeat: float | None = WS_HEARTBEAT,
        allowed_hosts: Iterable[str] = (),
        public_dev_key: bool = False,
        limits: Limits | None = None,
        max_frame_size: int = MAX_FRAME,
        rules: Rules | None = None,
    ) -> Emulator:
        """Serve on ``host:port`` (0: a free port) and return once listening.

        Args:
            api_keys: accepted API keys; none means the development key ``<tenant>.streamfw.
                emulator`` (``demo.streamfw.emulator`` by default).
            tenant: the one tenant served; default derived from the first key as jsc8 does.
            fabrics: fabric names; each gets its own broker.
            tls_cert, tls_key: PEM files; with them the emulator speaks https/wss only.
            clock: wall-clock seconds for every broker and OTP (tests inject a manual clock
                and call ``poke()``); default ``time.time``.
            auto_create: create a missing stream on WebSocket attach instead of answering 404.
            max_connections: TCP connections held open, WebSockets included (lowered to fit
                ``ulimit -n``). Past it the oldest unauthenticated connection is closed, else
                the oldest idle keep-alive one; with every slot in authenticated use a new
                connection's request gets 503.
            header_timeout: seconds a new connection has to send a complete request head.
            body_timeout: seconds to receive a whole request body; later: 408, closed.
            idle_timeout: seconds a keep-alive connection may wait for its next request.
            ws_heartbeat: seconds of silence on a WebSocket before the emulator pings it; a
                peer that does not answer within half of that is dropped (its consumer's
                unacknowledged messages go back to the subscription). None: never ping.
            allowed_hosts: extra ``Host`` header names answered when bound to loopback.
            public_dev_key: serve the public development key on a non-loopback address
                (refused otherwise: anyone who can reach the port could use it).
            limits: each fabric's caps on streams, subscriptions and backlog quota
                (``streamfw.Limits()`` by default; see docs/emulator.md).
            max_frame_size: bytes of the largest WebSocket message (a larger one closes its
                socket with 1009) and REST body (413) read; default 1 MiB, the default
                ``webSocketMaxTextFrameSize`` of Pulsar's WebSocket proxy.
            rules: each fabric broker's behaviour choices (``streamfw.broker.Rules()`` by
                default: Pulsar's redelivery count rule and its 1 s failover delay).
        """
        names = tuple(fabrics)
        if not names or any(not f or "/" in f for f in names):
            raise ValueError(f"fabric names must be non-empty and contain no '/': {names!r}")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if isinstance(max_frame_size, bool) or not (
            isinstance(max_frame_size, int) and max_frame_size >= 1024
        ):
            raise ValueError(
                f"max_frame_size must be a whole number >= 1024, not {max_frame_size!r}"
            )
        ws_heartbeat = ws_heartbeat or None  # 0 turns pings off, as on the command line
        for option, value in (
            ("header_timeout", header_timeout),
            ("body_timeout", body_timeout),
            ("idle_timeout", idle_timeout),
            ("ws_heartbeat", ws_heartbeat or 1.0),
        ):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{option} must be a positive number of seconds, not {value!r}")
        clock = clock or time.time
        auth = Authenticator(api_keys, tenant, clock)
        loopback = is_loopback(host)
        if auth.development and not loopback:
            if not public_dev_key:
                raise ValueError(
                    f"refusing to serve the public development key on {host or 'every address'}"
                    ": anyone who can reach it could use the emulator. Give your own key "
                    "(--api-key-file or STREAMFW_EMULATOR_API_KEY), bind 127.0.0.1, or "
                    "accept the exposure with --public-dev-key"
                )
            log.warning(
                "SERVING THE PUBLIC DEVELOPMENT KEY %s ON %s: anyone who can reach this "
                "address can read, write and delete every stream",
                auth.api_keys[0],
                host or "every address",
            )
        edge = Edge(
            ConnectionLimiter(usable_connections(max_connections), header_timeout),
            body_timeout,
            ws_heartbeat,
            HostCheck(host, tuple(allowed_hosts)) if loopback else None,
            max_frame_size,
        )
        context = _ssl_context(tls_cert, tls_key)
        logging.getLogger("aiohttp.server").addFilter(_REDACT)  # idempotent
        emu = cls()
        emu._limits = limits
        emu._rules = rules
        emu.tenant, emu.api_key, emu.fabrics = auth.tenant, auth.api_keys[0], names
        emu.max_frame_size = max_frame_size
        for key in auth.mismatched_keys():
            log.warning(
                "jsc8 derives tenant %r from one of the API keys, but this emulator "
                "serves tenant %r: its WebSocket paths will get 403",
                tenant_of_key(key),
                auth.tenant,
            )
        started: cf.Future[None] = cf.Future()
        emu._thread = threading.Thread(
            target=emu._run,
            # The coroutine is only created here; it first runs on the emulator's own loop.
            args=(
                started,
                emu._serve(host, port, context, auth, clock, auto_create, edge, idle_timeout),
            ),
            name="streamfw-emulator",
            daemon=True,
        )
        emu._thread.start()
        try:
            started.result(_START_TIMEOUT)
        except BaseException:  # a failed start ends the thread; Ctrl-C here must end it too
            emu._stopped = True
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                emu._loop.call_soon_threadsafe(emu._loop.stop)
            emu._thread.join(_STOP_TIMEOUT)
            raise
        scheme = "https" if context else "http"
        shown = f"[{host}]" if ":" in host else host
        emu.host, emu.url = host, f"{scheme}://{shown}:{emu.port}"
        log.info(
            "emulator listening on %s (tenant %s, fabrics %s)",
            emu.url,
            emu.tenant,
            ", ".join(names),
        )
        return emu

    def _run(self, started: cf.Future[None], serving: Coroutine[Any, Any, None]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(serving)
        except BaseException as exc:
            started.set_exception(exc)
            self._loop.close()
            return
        started.set_result(None)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _serve(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext | None,
        auth: Authenticator,
        clock: Callable[[], float],
        auto_create: bool,
        edge: Edge,
        idle_timeout: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        fabrics = {
            name: FabricHost(name, clock, loop, self._limits, self._rules) for name in self.fabrics
        }
        limit = edge.limiter.max_connections
        self._state = ServerState(auth, fabrics, auto_create, limit)
        self._limiter = edge.limiter
        app = web.Application(client_max_size=edge.max_frame)
        app[STATE] = self._state
        app[EDGE] = edge
        # Every path, newlines included (``.*`` would leave a %0A path to aiohttp's text 404).
        everything = r"/{tail:[\s\S]*}"
        app.router.add_route("*", everything, make_dispatcher(rest.ROUTES, sockets.handle))
        # aiohttp's keep-alive timer also runs from accept until a request head is complete,
        # so it bounds a later request head that never ends as well.
        options: dict[str, Any] = {
            "access_log_class": _AccessLogger,
            "keepalive_timeout": idle_timeout,
        }
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, **options)
        await self._runner.setup()
        site = CountingSite(self._runner, host, port, edge.limiter, options, context)
        try:
            await site.start()
        except BaseException:  # e.g. the port is taken: leave nothing half-open
            await self._runner.cleanup()
            raise
        self.port = self._runner.addresses[0][1]

    def poke(self) -> None:
        """Run every fabric's due timers now, on the loop thread, and wait until done.

        It first lets the loop handle frames clients have already written (``POKE_SETTLE``).
        With a manual clock, call it *before* moving the clock as well: a nack still in
        flight when the clock jumps would otherwise count its delay from the new time.
        """
        if self._stopped:
            raise RuntimeError("the emulator is stopped")
        asyncio.run_coroutine_threadsafe(self._poke(), self._loop).result(_STOP_TIMEOUT)

    async def _poke(self) -> None:
        assert self._state is not None
        # Frames a client wrote just before calling poke() (an ack, say) are in our socket
        # buffers already; let the loop read and handle them before timers fire.
        await asyncio.sleep(POKE_SETTLE)
        for fabric in self._state.fabrics.values():
            fabric.tick()

    def stop(self) -> None:
        """Close every socket and stop serving. Idempotent; safe from any thread."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                future.result(_STOP_TIMEOUT)
            except (cf.TimeoutError, RuntimeError):
                log.warning("emulator did not shut down cleanly within %ss", _STOP_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        thread.join(_STOP_TIMEOUT)

    async def _shutdown(self) -> None:
        assert self._state is not None and self._runner is not None
        closing = [
            sock.close_now(CLOSE_GOING_AWAY, "emulator stopping")
            for sock in list(self._state.sockets)
        ]
        if closing:
            await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=2.0)
        await self._runner.cleanup()
        for fabric in self._state.fabrics.values():
            fabric.cancel_timer()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def open_connections(self) -> int:
        """TCP connections open right now (WebSockets included)."""
        return len(self._limiter) if self._limiter is not None else 0

    @property
    def max_connections(self) -> int:
        """The connection limit in force (``max_connections``, lowered to fit ulimit -n)."""
        return self._limiter.max_connections if self._limiter is not None else 0

    def __repr__(self) -> str:
        return f"<Emulator {self.url or 'not started'} tenant={self.tenant!r}>"
