"""A tiny TCP proxy on 127.0.0.1 that tests and benchmarks can cut, refuse and listen to.

Shared by the network transports' tests and the fault benchmark
(``python -m benchmarks.faults``): every way a network can fail a client is one method here.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class Proxy:
    """Forwards 127.0.0.1:<port> to ``target``.

    ``cut()`` drops every open connection at once (both directions, mid-frame if need be);
    while ``refusing`` is set new connections are closed on accept; ``captured`` holds the
    first bytes each client sent (its HTTP request line and headers). ``half_open()`` closes
    the server side of every open connection but leaves the client side open and silent: the
    server sees the client go, the client sees nothing at all (a dead peer).
    """

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.refusing = threading.Event()
        self.captured: list[bytes] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._silent: set[socket.socket] = set()
        self._swallowed: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                self._open += [client, upstream]
                self._pairs.append((client, upstream))
            first = [True]
            for a, b, name in ((client, upstream, "up"), (upstream, client, "down")):
                threading.Thread(
                    target=self._pump, args=(a, b, first if name == "up" else None), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, first: list[bool] | None) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if src in self._swallowed:
                    continue  # blackholed: the bytes vanish, nobody is told
                if first is not None and first[0]:
                    first[0] = False
                    with self._lock:
                        self.captured.append(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                if s in self._silent:
                    continue  # left open on purpose: the client must find out by itself
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> int:
        """Drop every open connection; returns how many sockets were cut."""
        with self._lock:
            victims, self._open = self._open, []
        for s in victims:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        return len(victims)

    def half_open(self) -> None:
        """Drop the server side of every open connection; keep the client side silent."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self._open = []
            for client, _ in pairs:
                self._silent.add(client)
        for _, upstream in pairs:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
            upstream.close()

    def blackhole(self) -> int:
        """Stop forwarding on every open connection without closing either side; returns how
        many connections went silent. New connections are forwarded as usual."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self._open = []
            for client, upstream in pairs:
                self._silent.update((client, upstream))
                self._swallowed.update((client, upstream))
        return len(pairs)

    def client_side_cut(self, server_lag: float) -> None:
        """Drop the client side of every connection now, the server side ``server_lag`` s later
        (the server keeps a dead consumer attached for a while, as a real one may)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self._open = []
            for _, upstream in pairs:
                self._silent.add(upstream)  # the pumps must not close it early
        for client, _ in pairs:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()

        def later() -> None:
            for _, upstream in pairs:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_RDWR)
                upstream.close()

        threading.Timer(server_lag, later).start()

    def close(self) -> None:
        """Stop listening and drop every connection, silent ones included."""
        self._closed = True
        self.refusing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()
        for s in list(self._silent):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
