"""One overall deadline per call: sockets still busy when it passes are shut down.

Socket timeouts bound each ``recv``, not a call: a server that sends one byte per second
never trips them. A ``Deadline`` runs a timer for the whole call (connect, TLS, headers,
body, retries); the sockets the call uses are registered with it, and when the timer fires
it shuts them down, which wakes the blocked read at once. The caller then sees ``expired``
and raises ``OperationTimeout``.

A socket is registered as a duplicate of its descriptor, owned here and closed when the
call ends: the watchdog can never touch a descriptor number the call has closed and another
thread has reused. ``shutdown`` acts on the connection, not the descriptor, so shutting the
duplicate down stops the original too.

REST calls register their sockets through ``WatchedAdapter``: urllib3 connection classes
that report each new socket (and each kept-alive one reused) to the deadline active in the
calling thread.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests.adapters
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_active = threading.local()


class Deadline:
    """A call's time budget and the watchdog that enforces it. Use as a context manager."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._holders: list[Any] = []  # objects whose ``sock`` attribute is watched
        self._done = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.end - time.monotonic())

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True
            watched, self._watched, self._holders = self._watched, [], []
        for sock in watched:
            sock.close()

    @contextlib.contextmanager
    def active(self) -> Iterator[Deadline]:
        """Make this the deadline that REST sockets opened by this thread register with."""
        previous = getattr(_active, "deadline", None)
        _active.deadline = self
        try:
            yield self
        finally:
            _active.deadline = previous

    def watch(self, sock: Any) -> None:
        """Shut ``sock``'s connection down if the deadline passes before the call ends."""
        try:
            dup = socket.socket(fileno=os.dup(sock.fileno()))
        except (OSError, ValueError):
            return  # already closed: nothing left to stop
        with self._lock:
            if not self._done and not self.expired:
                self._watched.append(dup)
                return
            expired = self.expired
        if expired:
            _shutdown(dup)
        dup.close()

    def watch_holder(self, holder: Any) -> None:
        """Watch whatever socket ``holder.sock`` is when the deadline passes.

        For websocket-client, which creates its socket inside ``connect()``.
        """
        with self._lock:
            self._holders.append(holder)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._watched:
                _shutdown(sock)
            for holder in self._holders:
                current = getattr(holder, "sock", None)
                if current is not None:
                    _shutdown(current)


def _shutdown(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _report(sock: Any) -> None:
    deadline: Deadline | None = getattr(_active, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _report(sock)  # before any TLS handshake: that is bounded too
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _report(self.sock)  # a kept-alive connection (a new one reports in _new_conn)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """TLS over the same reporting: the MRO puts HTTPSConnection under the methods above."""


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose connections report their sockets to the active ``Deadline``."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> urllib3.ProxyManager:
        manager: urllib3.ProxyManager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager
