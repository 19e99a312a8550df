"""WebSocket plumbing shared by producers and consumers: connect, read loop, reconnect.

How it works. A ``Link`` owns one websocket-client ``WebSocket`` and one daemon thread that
reads from it. Application threads write under ``Link.lock``. When a read or write fails the
thread reconnects: new socket (with a fresh OTP when ``auth="otp"``), exponential backoff with
jitter (``reconnect_backoff`` up to ``reconnect_backoff_max``; after bad frames before the first
attempt too), and one overall deadline (``reconnect_deadline``). Subclasses hook in with
``on_text`` (a frame arrived), ``on_disconnect`` (the old socket is gone) and
``on_reconnect`` (the new socket is up; called holding the lock so nothing else writes first).
If the deadline passes, or the server refuses for good (auth, missing stream), the link fails:
``fail`` records a typed error and every later call raises it -- nothing waits forever.

Limits on what the server sends (docs/macrometa.md, "What the client accepts"):

* a message (all frames of it) longer than ``max_frame_size`` is refused as soon as a frame
  header announces it, before anything is allocated; the link reconnects;
* a frame the link cannot read (not UTF-8, not a Pulsar frame, a bad field) is a protocol
  error: logged (reason only, never the frame), counted in ``protocol_errors``, then skipped
  (consumers, readers: what could not be read stays with the server, which sends it again
  after an ack timeout or a reconnect) or answered by a reconnect (producers: only a new
  connection tells what became of unconfirmed sends);
* if for ``reconnect_deadline`` seconds every data frame was unreadable, the link fails with
  ``RemoteProtocolError`` instead of looping (the time spent reconnecting counts);
* silence: with nothing received for ``ping_interval`` the link pings; with still nothing
  ``timeout`` seconds later it reconnects. A server that vanished is noticed within
  ``ping_interval + timeout`` (30 s by default) of the last frame it sent.

The last two rules are ``BadFrameRun`` and ``Liveness`` in ``protocol/health.py``, the waits
and limits of a reconnect ``Reconnecting`` in ``protocol/reconnect.py``; this module gives
them the time. What a frame means is the subclasses' protocol object's business
(``protocol/``); a link only moves text between it and the socket.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import websocket
from websocket._abnf import frame_buffer

from streamfw.errors import (
    Closed,
    ConnectionLost,
    OperationTimeout,
    RemoteProtocolError,
    StreamError,
    SubscriptionBusy,
    TransportError,
)
from streamfw_macrometa import gateway, wire
from streamfw_macrometa.config import DEFAULT_MAX_FRAME_SIZE, Settings
from streamfw_macrometa.deadline import Deadline
from streamfw_macrometa.faults import (
    FATAL,
    fatal,
    reason,
    too_large,
    unreadable_run,
    upgrade_failure,
)
from streamfw_macrometa.protocol.health import BadFrameRun, Liveness, Silence
from streamfw_macrometa.protocol.reconnect import Backoff, Reconnecting
from streamfw_macrometa.rest import Rest

log = logging.getLogger("streamfw.macrometa")

READ_CHUNK = 65536
CONTROL_FRAME_MAX = 125  # RFC 6455 section 5.5


class FrameTooLarge(websocket.WebSocketProtocolException):
    """A frame header announced more than the link accepts; nothing of it was read."""


class _BoundedFrames(frame_buffer):
    """websocket-client's frame reader, refusing a message longer than ``limit`` bytes.

    The check runs right after a frame's length field is read, before its payload: an
    announced 200 MB frame costs nothing. Fragments count together, so a message cut into
    many small continuation frames is held to the same limit.
    """

    def __init__(self, recv: Callable[[int], bytes], limit: int) -> None:
        super().__init__(recv, skip_utf8_validation=True)  # we decode with bytes.decode
        self.limit = limit
        self._message = 0  # bytes announced so far for the message being read

    def recv_length(self) -> None:
        super().recv_length()
        assert self.header is not None and self.length is not None
        opcode = self.header[4]
        if opcode >= websocket.ABNF.OPCODE_CLOSE:  # control frames: 125 bytes at most
            if self.length > CONTROL_FRAME_MAX:
                raise FrameTooLarge(f"a control frame of {self.length} bytes (at most 125)")
            return
        self._message = self.length + (self._message if opcode == websocket.ABNF.OPCODE_CONT else 0)
        if self._message > self.limit:
            raise FrameTooLarge(too_large(self.limit, self._message))


class BufferedWebSocket(websocket.WebSocket):
    """websocket-client's ``WebSocket`` reading the socket in 64 KiB chunks, frames bounded.

    Its frame parser asks for the 2-byte header, the length and the payload separately, one
    ``recv`` system call each; serving those from a buffer saves two of three calls per frame.
    The handshake reads the socket directly (line by line), so nothing is read ahead of it.
    ``max_frame_size`` bounds what one received message may announce (see ``_BoundedFrames``).
    """

    _rbuf = b""
    _rpos = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._frames = self.frame_buffer = _BoundedFrames(self._recv, DEFAULT_MAX_FRAME_SIZE)

    @property
    def max_frame_size(self) -> int:
        return self._frames.limit

    @max_frame_size.setter
    def max_frame_size(self, limit: int) -> None:
        self._frames.limit = limit

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
        self.path = gateway.ws_path(path)
        self.params = dict(params)
        self.stream = stream
        self.subscription = subscription

    @property
    def where(self) -> str:
        """Where we connect, for messages: base and path, never the query."""
        return self.base + self.path

    def open(self, timeout: float | None = None) -> websocket.WebSocket:
        """Authenticate and open the WebSocket within ``timeout`` (default: the setting).

        One deadline covers the whole connect: the OTP call when ``auth="otp"``, TCP, TLS and
        the upgrade's answer; a server trickling bytes cannot stretch it. Each socket operation
        gets what is left of it (Python applies a socket's timeout to a TLS handshake as a
        whole), and the watchdog cuts the upgrade's answer off once ``ws.sock`` exists. The
        socket comes back with its read limits set, for every caller alike.
        """
        budget = timeout or self.settings.timeout
        with Deadline(budget) as deadline:
            params = dict(self.params)
            header: list[str] = []
            if self.settings.auth == "otp":  # fetched right before this connect
                try:
                    params[gateway.OTP] = self._rest.otp(max(0.001, deadline.remaining()))
                except OperationTimeout as exc:
                    raise self._late(budget, " (still fetching the OTP)") from exc
            else:
                header.append(f"Authorization: {self.settings.authorization}")
            url = self.where + ("?" + urlencode(params) if params else "")
            ws = BufferedWebSocket(
                sslopt=self.settings.sslopt,
                skip_utf8_validation=True,  # we decode with bytes.decode (C speed) ourselves
                enable_multithread=True,
            )
            deadline.watch_holder(ws)
            ws.settimeout(max(0.001, deadline.remaining()))
            try:
                ws.connect(url, header=header, suppress_origin=True)  # type: ignore[no-untyped-call]
            except (websocket.WebSocketException, OSError) as exc:
                # each socket operation may take what is left: its timeout is the deadline's
                timeouts = (websocket.WebSocketTimeoutException, TimeoutError)  # TLS: the latter
                if deadline.expired or isinstance(exc, timeouts):
                    raise self._late(budget) from exc
                raise upgrade_failure(
                    exc,
                    where=self.where,
                    path=self.path,
                    stream=self.stream,
                    subscription=self.subscription,
                ) from exc
        if deadline.expired:  # connected just as the watchdog shut the socket down
            ws.shutdown()  # type: ignore[no-untyped-call]
            raise self._late(budget)
        # The read limits: the frame bound, and a tick short enough that the reader's pings
        # and dead-peer check run close to their times.
        ws.max_frame_size = self.settings.max_frame_size
        ws.settimeout(min(self.settings.timeout, self.settings.ping_interval) / 4)
        return ws

    def _late(self, budget: float, stage: str = "") -> OperationTimeout:
        return OperationTimeout(
            f"WebSocket {self.where}: not connected within timeout={budget:g} s{stage}"
        )


class Link:
    """One WebSocket plus its reader thread; see the module docstring."""

    # What to do with a frame that cannot be read: skip it, or reconnect (see module docstring).
    skip_bad_frames = False

    def __init__(self, connector: Connector, what: str) -> None:
        self.connector = connector
        self.what = what  # e.g. "producer on stream 'orders'": used in every message
        self.settings = connector.settings
        self.lock = threading.RLock()
        self.closed = False
        self.failure: StreamError | None = None
        self._bad = BadFrameRun(self.settings.reconnect_deadline)
        self._backoff = Backoff(
            self.settings.reconnect_backoff, self.settings.reconnect_backoff_max
        )
        self._wake = threading.Event()
        self.ws: websocket.WebSocket | None = connector.open()  # errors raise
        log.info("%s: connected to %s", what, connector.where)
        self._thread = threading.Thread(target=self._run, name=f"macrometa {what}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def protocol_errors(self) -> int:
        """Unreadable frames from the server so far, for monitoring."""
        return self._bad.count

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

    def drop(self) -> None:
        """Drop the socket as a failing network would; the reader thread reconnects."""
        with self.lock:
            ws = self.ws
        if ws is not None:
            _drop(ws)

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
        liveness = Liveness(self.settings.ping_interval, self.settings.timeout, time.monotonic())
        while not self.closed and ws is not None:
            current = ws
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                silence = liveness.check(time.monotonic())
                if silence is Silence.DEAD:
                    ws = self._reconnect(ws, "no answer to pings")
                elif silence is Silence.PING:
                    try:
                        ws.ping()
                    except (websocket.WebSocketException, OSError):
                        ws = self._reconnect(ws, "ping failed")
            except FrameTooLarge as exc:
                ws = self._bad_frame(ws, str(exc), reconnect=True)
            except (websocket.WebSocketException, OSError, ValueError) as exc:
                ws = self._reconnect(ws, reason(exc))
            else:
                liveness.heard(time.monotonic())
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    ws = self._reconnect(ws, "closed by the server")
                elif opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                    try:
                        self.on_text(data.decode("utf-8"))
                    except UnicodeDecodeError as exc:  # worded as the protocol objects do
                        ws = self._bad_frame(ws, str(wire.not_json(exc)))
                    except RemoteProtocolError as exc:
                        ws = self._bad_frame(ws, str(exc))
                    else:
                        self._bad.readable()
            if ws is not current:  # a new connection starts afresh
                liveness.connected(time.monotonic())
                self._bad.connected(time.monotonic())

    def _bad_frame(
        self, ws: websocket.WebSocket, why: str, *, reconnect: bool = False
    ) -> websocket.WebSocket | None:
        """An unreadable frame: log, count, then skip it or reconnect; give up on a run of them.

        The run starts at the first unreadable frame after a readable one (or after
        ``reconnect_deadline`` without any) and fails the link once it lasts that long.
        """
        give_up = self._bad.unreadable(time.monotonic())
        reconnect = reconnect or not self.skip_bad_frames
        if give_up:
            error = unreadable_run(
                self.what, self.connector.where, self.settings.reconnect_deadline, why
            )
            log.warning("%s; giving up", error)
            self.fail(error)
            with self.lock:
                if self.ws is ws:
                    self.ws = None
            _drop(ws)
            return None
        log.warning(
            "%s: unreadable frame from the server (%s); %s",
            self.what,
            why,
            "reconnecting" if reconnect else "skipped",
        )
        return self._reconnect(ws, f"bad frame from the server: {why}") if reconnect else ws

    def _reconnect(self, old: websocket.WebSocket, why: str) -> websocket.WebSocket | None:
        with self.lock:
            if self.ws is old:
                self.ws = None
        _drop(old)
        if self.closed:
            return None
        log.warning("%s: connection lost (%s); reconnecting", self.what, why)
        self.on_disconnect()
        plan = Reconnecting(
            deadline=self.settings.reconnect_deadline,
            busy_deadline=self.settings.busy_deadline,
            backoff=self._backoff,
            bad=self._bad,
            now=time.monotonic(),
        )
        last = why
        wait = plan.first(time.monotonic())
        if wait:
            self._wake.wait(wait)
        while not self.closed:
            timeout = plan.attempt(time.monotonic(), self.settings.timeout)
            try:
                ws = self.connector.open(timeout=timeout)
            except FATAL as exc:
                log.warning("%s: not reconnecting: %s", self.what, exc)
                self.fail(fatal(self.what, exc))
                return None
            except StreamError as exc:
                last = str(exc)
                busy = isinstance(exc, SubscriptionBusy)
            else:
                with self.lock:
                    if self.closed:
                        _drop(ws)
                        return None
                    self.ws = ws
                    log.info(
                        "%s: reconnected to %s (attempt %d, after %.1f s)",
                        self.what,
                        self.connector.where,
                        plan.attempts,
                        time.monotonic() - plan.start,
                    )
                    self.on_reconnect(ws)
                return ws
            delay = plan.failed(time.monotonic(), busy=busy)
            if delay is None:
                break
            self._wake.wait(delay)  # the last try comes at the limit
        if not self.closed:
            lost = ConnectionLost(
                f"{self.what}: connection lost ({why}); gave up reconnecting to"
                f" {self.connector.where} after {plan.span:g} s: {last}"
            )
            log.warning("%s", lost)
            self.fail(lost)
        return None

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
