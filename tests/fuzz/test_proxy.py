"""The cutting proxy the fault tests and benchmark rely on does what it says."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from streamfw.testing.proxy import Proxy


@pytest.fixture
def echo() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def test_blackhole_keeps_both_sides_open_and_silent(echo: int) -> None:
    proxy = Proxy(echo)
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        client.sendall(b"ping")
        assert client.recv(4) == b"ping"
        assert proxy.blackhole() == 1
        client.sendall(b"lost")
        client.settimeout(0.5)
        with pytest.raises(TimeoutError):  # no answer and no close: a dead peer
            client.recv(4)
        fresh = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        fresh.sendall(b"again")
        assert fresh.recv(5) == b"again"  # new connections pass as before
        fresh.close()
        client.close()
    finally:
        proxy.close()
