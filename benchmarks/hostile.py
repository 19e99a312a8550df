"""Hostile peers on 127.0.0.1 for the resource benchmark: fake servers and abusive clients.

A fake server streams what it sends (a 200 MB WebSocket frame, a 300 MB HTTP body, one byte
a second) without holding it in memory, so only the victim's memory grows.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import socketserver
import threading
import time
import zlib
from collections.abc import Callable

CHUNK = 1 << 20
_WS_MAGIC = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def bomb(decoded: int = 1 << 30) -> bytes:
    """``decoded`` zero bytes, zlib-compressed twice (tag ``bytes+zlib+zlib``): ~2 KB."""
    inner = zlib.compressobj(9)
    zeros = bytes(CHUNK)
    parts = [inner.compress(zeros) for _ in range(decoded // CHUNK)]
    parts.append(inner.flush())
    return zlib.compress(b"".join(parts), 9)


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _ws_accept(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            digest = hashlib.sha1(value.strip() + _WS_MAGIC).digest()
            return base64.b64encode(digest)
    return b""


def big_ws_frame(conn: socket.socket, size: int) -> None:
    """Accept any WebSocket upgrade, then send one text frame of ``size`` bytes (a delivery)."""
    head = _read_head(conn)
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + _ws_accept(head) + b"\r\n\r\n"
    )
    frame_head = bytes([0x81, 127]) + size.to_bytes(8, "big")
    _send_padded(conn, frame_head, b'{"messageId":"CAEQADAA","payload":"', b'"}', size, b"A")


def big_http_body(conn: socket.socket, size: int) -> None:
    """Answer any request with a JSON body of ``size`` bytes (announced in Content-Length)."""
    _read_head(conn)
    http_head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(size).encode() + b"\r\n\r\n"
    )
    prefix = b'{"error":false,"code":200,"result":[{"tenant":"'
    _send_padded(conn, http_head, prefix, b'","user":"root"}]}', size, b"a")


def trickle(conn: socket.socket, size: int) -> None:
    """Answer any request one byte a second (status line, headers and body alike)."""
    _read_head(conn)
    body = b'{"error":false,"code":200,"result":[{"tenant":"bench","user":"root"}]}'
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    for i in range(min(size, len(answer))):
        conn.sendall(answer[i : i + 1])
        time.sleep(1.0)


def _send_padded(
    conn: socket.socket, head: bytes, prefix: bytes, suffix: bytes, size: int, byte: bytes
) -> None:
    """Send ``head``, then ``size`` bytes of JSON (``prefix``, ``byte`` repeated, ``suffix``)
    streamed a chunk at a time, then hold the connection open until the peer leaves."""
    conn.sendall(head + prefix)
    block = byte * CHUNK
    n = size - len(prefix) - len(suffix)
    while n > 0:
        conn.sendall(block[: min(n, CHUNK)])
        n -= CHUNK
    conn.sendall(suffix)
    _hold(conn)


def _hold(conn: socket.socket) -> None:
    conn.settimeout(60)
    with contextlib.suppress(OSError):
        while conn.recv(65536):
            pass


class FakeServer:
    """A threaded TCP server on 127.0.0.1 that runs ``behaviour(conn, size)`` per connection."""

    def __init__(self, behaviour: Callable[[socket.socket, int], None], size: int = 0) -> None:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError):
                    behaviour(self.request, size)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_by_peer(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` the other side has closed (EOF or reset on a peek)."""
    n = 0
    for s in sockets:
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_PEEK) == b"":
                n += 1
        except BlockingIOError:
            pass
        except OSError:
            n += 1
    return n
