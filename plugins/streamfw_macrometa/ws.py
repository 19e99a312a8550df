"""WebSocket plumbing shared by producers and consumers: connect, read loop, reconnect.

How it works. A ``Link`` owns one websocket-client ``WebSocket`` and one daemon thread that
reads from it. Application threads write under ``Link.lock``. When a read or write fails the
thread reconnects: new socket (with a fresh OTP when ``auth="otp"``), exponential backoff with
jitter, and one overall deadline (``reconnect_deadline``). Subclasses hook in with
``on_text`` (a frame arrived), ``on_disconnect`` (the old socket is gone) and
``on_reconnect`` (the new socket is up; called holding the lock so nothing else writes first).
If the deadline passes, or the server refuses for good (auth, missing stream), the link fails:
``fail`` records a typed error and every later call raises it -- nothing waits forever.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlencode

import websocket

from streamfw.errors import (
    AuthError,
    Closed,
    ConfigError,
    ConnectionLost,
    NotFound,
    RemoteProtocolError,
    StreamError,
    TransportError,
)
from streamfw_macrometa.config import Settings
from streamfw_macrometa.faults import reason, upgrade_failure
from streamfw_macrometa.rest import Rest, backoff

WS_ROOT = "/_ws/ws/v2"
FATAL = (AuthError, NotFound, ConfigError)  # reconnecting cannot fix these
READ_CHUNK = 65536


class BufferedWebSocket(websocket.WebSocket):
    """websocket-client's ``WebSocket`` reading the socket in 64 KiB chunks.

    Its frame parser asks for the 2-byte header, the length and the payload separately, one
    ``recv`` system call each; serving those from a buffer saves two of three calls per frame.
    The handshake reads the socket directly (line by line), so nothing is read ahead of it.
    """

    _rbuf = b""
    _rpos = 0

    def _recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            self._rbuf = super()._recv(READ_CHUNK)  # type: ignore[no-untyped-call]
            self._rpos = 0
            if not self._rbuf:
                return self._rbuf
        end = self._rpos + bufsize
        out = self._rbuf[self._rpos : end]
        self._rpos = end
        return out


class Connector:
    """Opens authenticated WebSockets to one endpoint; every call authenticates afresh."""

    def __init__(
        self,
        settings: Settings,
        rest: Rest,
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
        self.path = WS_ROOT + "/" + "/".join(quote(p, safe="._-") for p in path.split("/"))
        self.params = dict(params)
        self.stream = stream
        self.subscription = subscription

    @property
    def where(self) -> str:
        """Where we connect, for messages: base and path, never the query."""
        return self.base + self.path

    def open(self, timeout: float | None = None) -> websocket.WebSocket:
        params = dict(self.params)
        header: list[str] = []
        if self.settings.auth == "otp":
            params["otp"] = self._rest.otp(timeout)  # fetched right before this connect
        else:
            header.append(f"Authorization: {self.settings.authorization}")
        url = self.where + ("?" + urlencode(params) if params else "")
        try:
            ws = websocket.create_connection(
                url,
                timeout=timeout or self.settings.timeout,
                class_=BufferedWebSocket,
                header=header,
                sslopt=self.settings.sslopt,
                skip_utf8_validation=True,  # we decode with bytes.decode (C speed) ourselves
                enable_multithread=True,
                suppress_origin=True,
            )
        except (websocket.WebSocketException, OSError) as exc:
            raise upgrade_failure(
                exc,
                where=self.where,
                path=self.path,
                stream=self.stream,
                subscription=self.subscription,
            ) from exc
        ws.settimeout(min(self.settings.timeout, self.settings.ping_interval / 2))
        return ws


class Link:
    """One WebSocket plus its reader thread; see the module docstring."""

    def __init__(self, connector: Connector, what: str) -> None:
        self.connector = connector
        self.what = what  # e.g. "producer on stream 'orders'": used in every message
        self.settings = connector.settings
        self.lock = threading.RLock()
        self.closed = False
        self.failure: StreamError | None = None
        self._wake = threading.Event()
        self.ws: websocket.WebSocket | None = connector.open()  # first connect: errors raise
        self._thread = threading.Thread(target=self._run, name=f"macrometa {what}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # ------------------------------------------------------------------------ subclasses

    def on_text(self, text: str) -> None:
        raise NotImplementedError

    def on_disconnect(self) -> None:
        """The socket is gone; called from the reader thread before reconnecting."""

    def on_reconnect(self, ws: websocket.WebSocket) -> None:
        """A new socket is up; called holding ``lock``."""

    def on_fail(self, error: StreamError) -> None:
        """The link gave up; wake whoever waits."""

    # ---------------------------------------------------------------------------- writes

    def write(self, frame: str) -> bool:
        """Send a text frame if connected; on failure, drop the socket (the reader reconnects).

        Returns False if the frame was not sent; callers that need it sent keep it pending.
        """
        with self.lock:
            ws = self.ws
            if ws is None:
                return False
            try:
                ws.send(frame)
            except (websocket.WebSocketException, OSError):
                _drop(ws)
                self.ws = None
                return False
            return True

    def raise_if_unusable(self) -> None:
        if self.failure is not None:
            raise type(self.failure)(str(self.failure)) from self.failure
        if self.closed:
            raise Closed(f"{self.what} is closed")

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            ws, self.ws = self.ws, None
        self._wake.set()
        if ws is not None:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                ws.send_close()
            _drop(ws)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.settings.timeout)

    # ------------------------------------------------------------------------ read loop

    def _run(self) -> None:
        try:
            self._read_loop()
        except Exception as exc:  # a bug must fail the link loudly, not leave it hanging
            self.fail(TransportError(f"{self.what}: reader thread failed: {exc!r}"))
            with self.lock:
                ws, self.ws = self.ws, None
            if ws is not None:
                _drop(ws)

    def _read_loop(self) -> None:
        ws = self.ws
        last_seen = time.monotonic()
        while not self.closed and ws is not None:
            current = ws
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                idle = time.monotonic() - last_seen
                if idle > 2 * self.settings.ping_interval + self.settings.timeout:
                    ws = self._reconnect(ws, "no answer to pings")
                elif idle >= self.settings.ping_interval / 2:
                    try:
                        ws.ping()
                    except (websocket.WebSocketException, OSError):
                        ws = self._reconnect(ws, "ping failed")
            except (websocket.WebSocketException, OSError, ValueError) as exc:
                ws = self._reconnect(ws, reason(exc))
            else:
                last_seen = time.monotonic()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    ws = self._reconnect(ws, "closed by the server")
                elif opcode == websocket.ABNF.OPCODE_TEXT:
                    try:
                        self.on_text(data.decode("utf-8"))
                    except (UnicodeDecodeError, RemoteProtocolError) as exc:
                        ws = self._reconnect(ws, f"bad frame from the server: {exc}")
            if ws is not current:
                last_seen = time.monotonic()  # a new connection starts its idle clock afresh

    def _reconnect(self, old: websocket.WebSocket, why: str) -> websocket.WebSocket | None:
        with self.lock:
            if self.ws is old:
                self.ws = None
        _drop(old)
        if self.closed:
            return None
        self.on_disconnect()
        deadline = time.monotonic() + self.settings.reconnect_deadline
        last = why
        attempt = 0
        while not self.closed:
            attempt += 1
            remaining = deadline - time.monotonic()
            try:
                ws = self.connector.open(timeout=max(0.1, min(self.settings.timeout, remaining)))
            except FATAL as exc:
                self.fail(self._fatal(exc))
                return None
            except StreamError as exc:
                last = str(exc)
            else:
                with self.lock:
                    if self.closed:
                        _drop(ws)
                        return None
                    self.ws = ws
                    self.on_reconnect(ws)
                return ws
            wait = backoff(attempt)
            if time.monotonic() + wait > deadline:
                break
            self._wake.wait(wait)
        if not self.closed:
            self.fail(
                ConnectionLost(
                    f"{self.what}: connection lost ({why}); gave up reconnecting to"
                    f" {self.connector.where} after {self.settings.reconnect_deadline:g} s:"
                    f" {last}"
                )
            )
        return None

    def _fatal(self, exc: StreamError) -> StreamError:
        if isinstance(exc, NotFound):
            closed = Closed(f"{self.what} closed: the stream no longer exists")
            closed.__cause__ = exc
            return closed
        return exc

    def fail(self, error: StreamError) -> None:
        with self.lock:
            if self.failure is None:
                self.failure = error
        self.on_fail(error)


def _drop(ws: websocket.WebSocket) -> None:
    """Shut the socket down (wakes a thread blocked reading it) and close it; never raises.

    Not ``ws.abort()``: it does nothing once ``send_close`` has cleared ``ws.connected``, and
    closing alone does not wake a blocked ``recv`` on Linux.
    """
    sock = ws.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    ws.shutdown()  # type: ignore[no-untyped-call]


def make_ws_base(settings: Settings, local: bool, dc_url: Callable[[], str]) -> str:
    """The WebSocket origin for a stream: fixed, or for GDN local streams the region host."""
    if settings.ws_url_fixed or not settings.gdn or not local:
        return settings.ws_url
    host = dc_url()
    return "wss://" + (host if host.startswith("api-") else "api-" + host)
