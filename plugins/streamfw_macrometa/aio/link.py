"""One WebSocket session on the event loop: connect, read task, writer task, reconnect.

The asyncio twin of ``ws.Link`` with the same rules (docs/macrometa.md): every connect
authenticates afresh (a new OTP when ``auth="otp"``) within ``timeout``; a dropped
connection is reopened with backoff between attempts (and before the first one after bad
frames) until ``reconnect_deadline`` (``protocol/reconnect.py``: longer once the server
answered 409), then the link fails with ``ConnectionLost``; auth and missing-stream answers
fail it at once. A connection given up is shut down without a closing handshake, as the
threaded link does: a server that never answers a close frame cannot hold a reconnect up. A
message over ``max_frame_size`` (aiohttp's ``max_msg_size``) and unreadable frames count in
``BadFrameRun``; silence is ``Liveness``'s business (``protocol/health.py``), checked by a
timer every quarter of ``min(timeout, ping_interval)`` rather than by a timeout around each
read, which would cost a timer per message.

Tasks. A read task receives frames and hands them to ``on_text`` (the subclass drives its
protocol object); it also reconnects. One writer task writes the frames queued by ``write``,
in order, so a caller's cancellation can never cut a frame in half; a frame queued while the
link is disconnected is refused (``write`` returns False) and the protocol object keeps what
must be resent. Nothing here blocks the loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import aiohttp

from streamfw.errors import (
    Closed,
    ConnectFailed,
    ConnectionLost,
    OperationTimeout,
    RemoteProtocolError,
    StreamError,
    SubscriptionBusy,
    TransportError,
)
from streamfw_macrometa import gateway
from streamfw_macrometa.aio.rest import AsyncRest, client_reason
from streamfw_macrometa.aio.session import refusal_detail
from streamfw_macrometa.config import Settings
from streamfw_macrometa.faults import (
    FATAL,
    fatal,
    reason,
    refused_upgrade,
    strip_query,
    too_large,
    unreadable_run,
)
from streamfw_macrometa.protocol.health import BadFrameRun, Liveness, Silence
from streamfw_macrometa.protocol.reconnect import Backoff, Reconnecting

log = logging.getLogger("streamfw.macrometa")

_PING: Final = ("", 0)  # a writer-queue item: send a ping
_DATA = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
if TYPE_CHECKING:
    WebSocket = aiohttp.ClientWebSocketResponse[bool]


class Endpoint:
    """Where one session connects, and how; every ``open`` authenticates afresh."""

    def __init__(
        self,
        settings: Settings,
        rest: AsyncRest,
        base: str,
        path: str,
        params: Mapping[str, str],
        *,
        stream: str,
        subscription: str = "",
    ) -> None:
        self.settings = settings
        self._rest = rest
        self.base = base
        self.path = path
        self.params = dict(params)
        self.stream = stream
        self.subscription = subscription

    @property
    def where(self) -> str:
        """Where we connect, for messages: base and path, never the query."""
        return self.base + self.path

    async def open(self, timeout: float | None = None) -> WebSocket:
        """Authenticate and open the WebSocket; one deadline covers OTP, TCP, TLS, upgrade."""
        budget = timeout or self.settings.timeout
        try:
            return await asyncio.wait_for(self._open(budget), budget)
        except asyncio.TimeoutError:
            raise OperationTimeout(
                f"WebSocket {self.where}: not connected within timeout={budget:g} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            why = client_reason(exc)
        # out here: no context holding aiohttp's error, which may quote the URL (and OTP)
        raise ConnectFailed(f"WebSocket {strip_query(self.where)}: could not connect: {why}")

    async def _open(self, budget: float) -> WebSocket:
        loop = asyncio.get_running_loop()
        end = loop.time() + budget
        refusal_detail.set("")
        params = dict(self.params)
        headers = {}
        if self.settings.auth == "otp":  # fetched right before this connect
            params[gateway.OTP] = await self._rest.otp(max(0.001, end - loop.time()))
        else:
            headers["Authorization"] = self.settings.authorization
        try:
            return await self._rest.session.ws_connect(
                self.where,
                params=params,
                headers=headers,
                # aiohttp refuses a message of max_msg_size bytes or more (from the frame
                # header, before buffering it); ours are accepted up to max_frame_size
                max_msg_size=self.settings.max_frame_size + 1,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.settings.timeout),
                autoping=True,
                decode_text=False,  # we decode: an undecodable frame is ours to judge
            )
        except aiohttp.WSServerHandshakeError as exc:
            status, detail = exc.status, refusal_detail.get("") or exc.message
        # Raised out here, with neither cause nor context: aiohttp's error quotes the URL,
        # whose query holds the OTP.
        raise refused_upgrade(
            status,
            detail,
            what=f"WebSocket {self.path}",
            stream=self.stream,
            subscription=self.subscription,
        )


class AsyncLink:
    """One WebSocket plus its read and writer tasks; see the module docstring.

    Subclasses implement ``on_text`` and may override ``on_disconnect``, ``on_reconnect``
    (called with the new socket current and nothing written on it yet) and ``on_fail``.
    """

    skip_bad_frames = False  # an unreadable frame: skip it (True) or reconnect

    def __init__(self, endpoint: Endpoint, what: str) -> None:
        self.endpoint = endpoint
        self.what = what
        self.settings = endpoint.settings
        self.closed = False
        self.failure: StreamError | None = None
        self._loop = asyncio.get_running_loop()
        self._ws: WebSocket | None = None
        self._out: collections.deque[tuple[str, int]] = collections.deque()
        self._wake_writer = asyncio.Event()
        self._bad = BadFrameRun(self.settings.reconnect_deadline)
        self._backoff = Backoff(
            self.settings.reconnect_backoff, self.settings.reconnect_backoff_max
        )
        self._liveness = Liveness(self.settings.ping_interval, self.settings.timeout, 0.0)
        self._frames = 0  # frames received so far: the watchdog's sign of life
        self._seen_frames = 0
        self._interrupt: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Connect (errors raise) and start the tasks."""
        self._ws = await self.endpoint.open()
        log.info("%s: connected to %s", self.what, self.endpoint.where)
        self._liveness.connected(self._loop.time())
        self._reader = asyncio.create_task(self._run(), name=f"macrometa {self.what} reader")
        self._writer = asyncio.create_task(self._write_loop(), name=f"macrometa {self.what} writer")
        self._arm_watchdog()

    @property
    def protocol_errors(self) -> int:
        """Unreadable frames from the server so far, for monitoring."""
        return self._bad.count

    @property
    def connected(self) -> bool:
        return self._ws is not None

    # ------------------------------------------------------------------------ subclasses

    def on_text(self, data: bytes) -> None:
        """A data frame arrived; raise ``RemoteProtocolError`` if it cannot be read."""
        raise NotImplementedError

    def on_disconnect(self) -> None:
        """The socket is gone (before reconnecting)."""

    def on_reconnect(self) -> None:
        """A new socket is current; nothing was written on it yet."""

    def on_fail(self, error: StreamError) -> None:
        """The link gave up or was closed; wake whoever waits."""

    # ---------------------------------------------------------------------------- writes

    def write(self, frame: str, context: int = 0) -> bool:
        """Queue a text frame for the current connection; False if there is none.

        ``written(context)`` is called once the frame went out whole (``context`` 0: none).
        """
        if self._ws is None:
            return False
        if not self._out:
            self._wake_writer.set()
        self._out.append((frame, context))
        return True

    def written(self, context: int) -> None:
        """A queued frame with this context went out whole."""

    async def _write_loop(self) -> None:
        out = self._out
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            while out:
                ws = self._ws
                if ws is None:
                    out.clear()
                    break
                frame, context = out.popleft()
                try:
                    if frame:
                        await ws.send_str(frame)
                    else:
                        await ws.ping()
                except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                    # The frame may be cut; the protocol resends what is unconfirmed.
                    out.clear()
                    self._interrupt_reader(ws, f"write failed: {reason(exc)}")
                    break
                if context:
                    self.written(context)

    def raise_if_unusable(self) -> None:
        if self.failure is not None:
            raise type(self.failure)(str(self.failure)) from self.failure
        if self.closed:
            raise Closed(f"{self.what} is closed")

    def drop(self) -> None:
        """Drop the connection as a failing network would; the read task reconnects.

        As the threaded link's ``drop``: the socket is shut down, with no closing handshake,
        so the read task sees the connection end as after a cut cable.
        """
        if self._ws is not None:
            _shut(self._ws)

    async def close(self) -> None:
        """Close the session; idempotent. The bookkeeping is done before the first await."""
        if self.closed:
            return
        self.closed = True
        ws, self._ws = self._ws, None
        self._out.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
        tasks = [t for t in (self._reader, self._writer) if t is not None]
        for task in tasks:
            task.cancel()
        self.on_fail(Closed(f"{self.what} is closed"))
        # Cancelling close() from here on still closes: the rest only waits for it.
        await asyncio.shield(self._finish(ws, tasks))

    async def _finish(self, ws: WebSocket | None, tasks: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*tasks, return_exceptions=True)
        if ws is not None:
            await _drop(ws, self.settings.timeout)

    # ------------------------------------------------------------------------ read loop

    def _arm_watchdog(self) -> None:
        tick = min(self.settings.timeout, self.settings.ping_interval) / 4
        self._watchdog = self._loop.call_later(tick, self._watch)

    def _watch(self) -> None:
        """Every tick: frames seen count as heard; silence asks for a ping or a reconnect."""
        now = self._loop.time()
        if self._frames != self._seen_frames:
            self._seen_frames = self._frames
            self._liveness.heard(now)
        ws = self._ws
        if ws is not None:
            silence = self._liveness.check(now)
            if silence is Silence.DEAD:
                self._interrupt_reader(ws, "no answer to pings")
            elif silence is Silence.PING:
                self.write(*_PING)
        if not self.closed and self.failure is None:
            self._arm_watchdog()

    def _interrupt_reader(self, ws: WebSocket, why: str) -> None:
        """Make the read task give up ``ws`` (if still current) and reconnect: shutting the
        socket down from here ends the read task's ``receive`` at once, whoever is at the other
        end (a closing handshake would wait for a peer that may be gone)."""
        if ws is self._ws and self._interrupt is None:
            self._interrupt = why
            _shut(ws)

    async def _run(self) -> None:
        try:
            ws = self._ws
            while ws is not None and not self.closed:
                why = await self._read(ws)
                why, self._interrupt = self._interrupt or why, None
                ws = await self._reconnect(ws, why)
        except asyncio.CancelledError:
            raise  # close()
        except Exception as exc:  # a bug must fail the link loudly, not leave it hanging
            log.exception("%s: read task failed", self.what)
            self.fail(TransportError(f"{self.what}: read task failed: {exc!r}"))

    async def _read(self, ws: WebSocket) -> str:
        """Read frames from ``ws`` until it ends; why it ended."""
        while True:
            msg = await ws.receive()
            self._frames += 1
            kind = msg.type
            if kind in _DATA:
                try:
                    self.on_text(msg.data)
                except RemoteProtocolError as exc:
                    if not self._bad_frame(str(exc), reconnect=not self.skip_bad_frames):
                        return "bad frame from the server"
                else:
                    self._bad.readable()
            elif kind is aiohttp.WSMsgType.ERROR:
                error = msg.data
                if isinstance(error, aiohttp.WebSocketError) and (
                    error.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
                ):
                    self._bad_frame(too_large(self.settings.max_frame_size), reconnect=True)
                    return "bad frame from the server: too large"
                return reason(error) if isinstance(error, BaseException) else "error"
            elif kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
                return "closed by the server"
            elif kind is aiohttp.WSMsgType.CLOSED:
                return "connection closed"

    def _bad_frame(self, why: str, *, reconnect: bool) -> bool:
        """Log and count an unreadable frame; whether to keep this connection."""
        if self._bad.unreadable(self._loop.time()):
            error = unreadable_run(
                self.what, self.endpoint.where, self.settings.reconnect_deadline, why
            )
            log.warning("%s; giving up", error)
            self.fail(error)
            return False
        log.warning(
            "%s: unreadable frame from the server (%s); %s",
            self.what,
            why,
            "reconnecting" if reconnect else "skipped",
        )
        return not reconnect

    async def _reconnect(self, old: WebSocket, why: str) -> WebSocket | None:
        if self._ws is old:
            self._ws = None
        self._out.clear()
        _shut(old)  # no closing handshake: a peer that never answers one cannot hold us up
        await _drop(old, self.settings.timeout)  # prompt once shut: only aiohttp's side is left
        if self.closed or self.failure is not None:
            return None
        log.warning("%s: connection lost (%s); reconnecting", self.what, why)
        self.on_disconnect()
        loop = self._loop
        plan = Reconnecting(
            deadline=self.settings.reconnect_deadline,
            busy_deadline=self.settings.busy_deadline,
            backoff=self._backoff,
            bad=self._bad,
            now=loop.time(),
        )
        last = why
        wait = plan.first(loop.time())
        if wait:
            await asyncio.sleep(wait)
        while not self.closed:
            timeout = plan.attempt(loop.time(), self.settings.timeout)
            try:
                ws = await self.endpoint.open(timeout)
            except FATAL as exc:
                log.warning("%s: not reconnecting: %s", self.what, exc)
                self.fail(fatal(self.what, exc))
                return None
            except StreamError as exc:
                last = str(exc)
                busy = isinstance(exc, SubscriptionBusy)
            else:
                if self.closed:
                    # close() came as this connect ended (Python 3.11's wait_for then returns
                    # the result rather than raising): without this the server would keep
                    # the session, and an Exclusive subscription stay busy.
                    await _drop(ws, self.settings.timeout)
                    return None
                self._ws = ws
                self._liveness.connected(loop.time())
                self._bad.connected(loop.time())
                log.info(
                    "%s: reconnected to %s (attempt %d, after %.1f s)",
                    self.what,
                    self.endpoint.where,
                    plan.attempts,
                    loop.time() - plan.start,
                )
                self.on_reconnect()
                return ws
            delay = plan.failed(loop.time(), busy=busy)
            if delay is None:
                break
            await asyncio.sleep(delay)  # the last try comes at the limit
        lost = ConnectionLost(
            f"{self.what}: connection lost ({why}); gave up reconnecting to"
            f" {self.endpoint.where} after {plan.span:g} s: {last}"
        )
        log.warning("%s", lost)
        self.fail(lost)
        return None

    def fail(self, error: StreamError) -> None:
        if self.failure is None:
            self.failure = error
        self._ws = None
        self._out.clear()
        self.on_fail(error)


def _shut(ws: WebSocket) -> None:
    """Shut the connection's socket down, as a cut cable would end it; never raises."""
    sock = ws.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


async def _drop(ws: WebSocket, timeout: float) -> None:
    """Close ``ws`` within ``timeout`` (aiohttp aborts the connection when cut short)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), timeout)
