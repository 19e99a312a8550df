"""What a consumer does with frames it cannot read: skip, count, never die; sizes are bounded.

The server here is scripted: a real WebSocket over TCP on 127.0.0.1 whose frames the test
writes byte by byte, so it can send what no real broker would (bad fields, invalid UTF-8,
deep nesting, a header announcing 200 MB).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from streamfw_macrometa import config
from streamfw_macrometa.consumer import MacrometaConsumer
from streamfw_macrometa.rest import Rest
from streamfw_macrometa.wire import encode_message_id
from streamfw_macrometa.ws import Connector

from streamfw.api import StreamRef, TransportConfig
from streamfw.errors import ConnectionLost, RemoteProtocolError
from streamfw.message import MessageId

KEY = "acme.example.S3cr3tK3yValue"
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

    def read_text(self, timeout: float = WAIT) -> str | None:
        """The next text frame from the client (pings are answered), or None at EOF/timeout."""
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
                if opcode == 8:
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
    return {
        "messageId": encode_message_id(MessageId("s", 1, entry)),
        "payload": base64.b64encode(payload).decode(),
        "publishTime": "2026-01-01T00:00:00.000Z",
        "redeliveryCount": count,
        **extra,
    }


@contextlib.contextmanager
def consumer_on(server: ScriptedServer, **options: Any) -> Iterator[MacrometaConsumer]:
    """A consumer link of subscription ``sub`` on stream ``s``, talking to ``server``."""
    opts = {"api_key": KEY, "tenant": "acme", "timeout": 2.0, "reconnect_deadline": 3.0}
    settings = config.parse(
        TransportConfig(f"macrometa+http://127.0.0.1:{server.port}", {**opts, **options})
    )
    rest = Rest(settings)
    connector = Connector(
        settings,
        rest,
        settings.ws_url,
        "consumer/persistent/acme/c8global._system/c8globals.s/sub",
        {},
        stream="s",
        subscription="sub",
    )
    link = MacrometaConsumer(connector, StreamRef("s"), "sub")
    try:
        yield link
    finally:
        link.close()
        rest.close()
        server.close()


def hold(peer: Peer) -> None:
    """Keep the connection open (answering pings) until the client goes."""
    while peer.read_text(timeout=30) is not None:
        pass


BAD_FRAMES: list[bytes] = [
    json.dumps(delivery(1, redeliveryCount="abc")).encode(),
    json.dumps(delivery(1)).replace('"redeliveryCount": 0', '"redeliveryCount": 1e400').encode(),
    json.dumps(delivery(1, properties={"a": 1})).encode(),
    json.dumps(delivery(1, publishTime=7)).encode(),
    b"[" * 100_000,
    b'{"messageId":' + b"[" * 50_000,
    b"\xff\xfe not utf-8",
    b"not json at all",
    b"[1, 2, 3]",
    b'{"unexpected": "shape"}',
]


@pytest.mark.parametrize("bad", BAD_FRAMES, ids=lambda b: repr(b[:24]))
def test_a_bad_frame_is_skipped_and_counted(bad: bytes, caplog: pytest.LogCaptureFixture) -> None:
    def script(peer: Peer, n: int) -> None:
        peer.send_frame(bad)
        peer.send(delivery(2, b"after"))
        hold(peer)

    server = ScriptedServer(script)
    with caplog.at_level(logging.WARNING, "streamfw.macrometa"), consumer_on(server) as link:
        got = link.receive(WAIT)
        assert got is not None and got.payload == b"after"
        assert link.protocol_errors == 1
        assert server.connections == 1  # skipped, no reconnect
        link.ack(got.message_id)
    warning = [r.getMessage() for r in caplog.records if r.name == "streamfw.macrometa"]
    assert len(warning) == 1 and "skipped" in warning[0]
    assert KEY not in warning[0] and len(warning[0]) < 400


def test_only_junk_ends_in_a_typed_error_after_the_deadline() -> None:
    def script(peer: Peer, n: int) -> None:
        while True:  # junk, again and again, on every connection
            peer.send_frame(b"\xff junk")
            time.sleep(0.05)

    server = ScriptedServer(script)
    with consumer_on(server, reconnect_deadline=1.0) as link:
        start = time.monotonic()
        with pytest.raises(RemoteProtocolError, match="unreadable for 1 s; last: not UTF-8"):
            while time.monotonic() - start < 10:
                link.receive(0.5)
        assert time.monotonic() - start < 5
        assert link.protocol_errors >= 10


def test_an_oversized_frame_is_refused_from_its_header() -> None:
    """The header announces 200 MB: refused at once, nothing allocated, the link reconnects."""

    def script(peer: Peer, n: int) -> None:
        if n == 0:
            peer.announce(200 * 1024 * 1024)
        else:
            peer.send(delivery(3, b"fine"))
        hold(peer)

    server = ScriptedServer(script)
    with consumer_on(server) as link:
        got = link.receive(WAIT)
        assert got is not None and got.payload == b"fine"
        assert link.protocol_errors == 1 and server.connections == 2


def test_fragments_count_together_against_the_limit() -> None:
    limit = 64 * 1024

    def script(peer: Peer, n: int) -> None:
        if n == 0:
            text = json.dumps(delivery(4, os.urandom(limit))).encode()
            chunks = [text[i : i + 8192] for i in range(0, len(text), 8192)]
            for i, chunk in enumerate(chunks):  # text, then continuation frames
                opcode = 1 if i == 0 else 0
                fin = 0x80 if i == len(chunks) - 1 else 0
                peer.sock.sendall(bytes([fin | opcode, 126]) + struct.pack("!H", len(chunk)))
                peer.sock.sendall(chunk)
        else:
            peer.send(delivery(5, b"small"))
        hold(peer)

    server = ScriptedServer(script)
    with consumer_on(server, max_frame_size=limit) as link:
        got = link.receive(WAIT)
        assert got is not None and got.payload == b"small"
        assert link.protocol_errors == 1 and server.connections == 2


def test_a_frame_at_the_limit_is_accepted() -> None:
    body = json.dumps(delivery(6, b"y" * 3000)).encode()

    def script(peer: Peer, n: int) -> None:
        peer.send_frame(body)
        hold(peer)

    server = ScriptedServer(script)
    with consumer_on(server, max_frame_size=len(body)) as link:
        got = link.receive(WAIT)
        assert got is not None and got.payload == b"y" * 3000
        assert link.protocol_errors == 0


def test_a_silent_server_is_noticed_after_ping_interval_plus_timeout() -> None:
    """The server stops answering (pings included): reconnect after ping_interval + timeout."""
    times: list[float] = []

    def script(peer: Peer, n: int) -> None:
        times.append(time.monotonic())
        if n == 0:
            time.sleep(30)  # never reads: pings go unanswered
        else:
            hold(peer)

    server = ScriptedServer(script)
    with consumer_on(server, ping_interval=0.6, timeout=0.6, reconnect_deadline=5.0) as link:
        deadline = time.monotonic() + 10
        while server.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.connections == 2
        noticed = times[1] - times[0]
        assert 1.2 <= noticed < 1.2 + 1.0  # ping_interval + timeout, plus at most a few ticks
        assert link.failure is None


def test_busy_is_retried_until_busy_deadline_then_connection_lost() -> None:
    """409 on every reconnect: retried for busy_deadline (longer than reconnect_deadline)."""

    def script(peer: Peer, n: int) -> None:
        peer.close()  # the first connection drops at once

    server = ScriptedServer(script)
    refusals: list[float] = []

    def refuse(sock: socket.socket) -> None:
        sock.recv(4096)
        refusals.append(time.monotonic())
        sock.sendall(
            b"HTTP/1.1 409 Conflict\r\nContent-Length: 14\r\nConnection: close\r\n\r\n"
            b"Exclusive busy"
        )
        sock.close()

    def upgrade_then_refuse(sock: socket.socket) -> None:
        if server.connections == 0:
            ScriptedServer._serve(server, sock)
        else:
            refuse(sock)

    server._serve = upgrade_then_refuse  # type: ignore[method-assign]
    start = time.monotonic()
    with consumer_on(server, reconnect_deadline=0.5, busy_deadline=2.0) as link:
        with pytest.raises(ConnectionLost, match=r"after 2 s: .*HTTP 409"):
            link.receive(WAIT)
        took = time.monotonic() - start
    assert 1.8 <= took < 4
    assert refusals and refusals[-1] - refusals[0] > 1.0  # well past reconnect_deadline
