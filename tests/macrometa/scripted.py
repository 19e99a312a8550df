"""A scripted WebSocket server on 127.0.0.1 for the macrometa links' frame tests.

A real WebSocket over TCP whose frames the test writes byte by byte, so it can send what no
real broker would (bad fields, invalid UTF-8, deep nesting, a header announcing 200 MB).
``ScriptedServer(script)`` runs ``script(peer, n)`` for its n-th connection.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from streamfw_macrometa.wire import encode_message_id

from streamfw.message import MessageId

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WAIT = 5.0


class Peer:
    """The server side of one accepted WebSocket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received: list[str] = []  # text frames from the client
        self._buf = b""

    def send_frame(self, payload: bytes, opcode: int = 1) -> None:
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([n])
        elif n < 1 << 16:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        self.sock.sendall(head + payload)

    def send(self, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        self.send_frame(text.encode())

    def announce(self, length: int) -> None:
        """A text frame header announcing ``length`` bytes, and none of them."""
        self.sock.sendall(bytes([0x81, 127]) + struct.pack("!Q", length))

    def read_text(self, timeout: float = WAIT, *, answer_close: bool = True) -> str | None:
        """The next text frame from the client (pings and a close are answered), or None at
        EOF, close or timeout. ``answer_close=False``: a close frame goes unanswered and the
        reading goes on, as with a server that ignores closing handshakes."""
        self.sock.settimeout(timeout)
        try:
            while True:
                opcode, payload = self._frame()
                if opcode == 1:
                    text = payload.decode()
                    self.received.append(text)
                    return text
                if opcode == 9:
                    self.send_frame(payload, 10)
                if opcode == 8 and answer_close:  # as RFC 6455 asks: a client may wait for it
                    self.send_frame(payload[:2], 8)
                    return None
        except (OSError, ConnectionError):
            return None

    def _frame(self) -> tuple[int, bytes]:
        b1, b2 = self._exact(2)
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._exact(8))
        mask = self._exact(4) if b2 & 0x80 else b"\0\0\0\0"
        data = self._exact(n)
        return b1 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(data))

    def _exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class ScriptedServer:
    """Accepts WebSocket upgrades on 127.0.0.1; ``script(peer, n)`` runs for connection n."""

    def __init__(self, script: Callable[[Peer, int], None]) -> None:
        self.script = script
        self.connections = 0
        self.peers: list[Peer] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                sock.close()
                return
            request += chunk
        headers = dict(
            line.split(": ", 1) for line in request.decode("latin-1").split("\r\n")[1:] if line
        )
        key = {k.lower(): v for k, v in headers.items()}["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        peer = Peer(sock)
        self.peers.append(peer)
        n = self.connections
        self.connections += 1
        with contextlib.suppress(OSError):
            self.script(peer, n)

    def close(self) -> None:
        self._listener.close()
        for peer in self.peers:
            peer.close()


def delivery(entry: int, payload: bytes = b"x", count: int = 0, **extra: Any) -> dict[str, Any]:
    """A delivery frame of message ``entry`` on stream ``s``; ``extra`` adds or replaces fields."""
    return {
        "messageId": encode_message_id(MessageId("s", 1, entry)),
        "payload": base64.b64encode(payload).decode(),
        "publishTime": "2026-01-01T00:00:00.000Z",
        "redeliveryCount": count,
        **extra,
    }


def answer_with(junk: bytes, *, answer_close: bool = True) -> Callable[[Peer, int], None]:
    """A script answering every text frame of every connection with ``junk``."""

    def script(peer: Peer, n: int) -> None:
        while peer.read_text(timeout=30, answer_close=answer_close) is not None:
            peer.send_frame(junk)

    return script


def hold(peer: Peer) -> None:
    """Keep the connection open (answering pings) until the client goes."""
    while peer.read_text(timeout=30) is not None:
        pass
