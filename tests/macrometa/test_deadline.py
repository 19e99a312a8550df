"""``timeout`` bounds a whole call, however slowly the server answers (issue 8).

A slow-loris server on 127.0.0.1 reads the request, then answers one byte every
``INTERVAL`` s (shorter than ``TIMEOUT``): in the status line and headers, or in a body
announced by its headers. Socket timeouts alone never fire (every read gets a byte in
time). The REST call (``connect()`` discovering the tenant), the OTP fetch and the WebSocket
upgrade must each end with a typed error within ``timeout`` plus generous slack. The bound
is one of correctness, not speed.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import trustme
from streamfw_macrometa.config import parse
from streamfw_macrometa.rest import Rest
from streamfw_macrometa.ws import Connector

from streamfw import ConnectFailed, OperationTimeout, connect
from streamfw.api import TransportConfig
from streamfw.errors import TransportError
from tests.macrometa.conftest import KEY
from tests.macrometa.fake_http import RawServer, read_head

TIMEOUT = 1.0
INTERVAL = 0.25  # seconds between bytes: each read is quick, the whole never ends
BOUND = 5.0  # timeout=1 must end well before this, whatever the machine's load

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 800\r\n\r\n"
UPGRADE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
)


def slow_loris(prefix: bytes, trickle: bytes) -> RawServer:
    """Answers every request ``prefix`` at once, then ``trickle`` a byte every ``INTERVAL``."""

    def respond(server: RawServer, conn: socket.socket) -> None:
        conn.sendall(prefix)
        for i in range(len(trickle)):
            if server.wait_stopped(INTERVAL):
                return
            conn.sendall(trickle[i : i + 1])

    return RawServer(respond)


@contextlib.contextmanager
def slow(prefix: bytes, trickle: bytes) -> Iterator[RawServer]:
    server = slow_loris(prefix, trickle)
    try:
        yield server
    finally:
        server.close()


def url(server: RawServer) -> str:
    return f"macrometa+http://127.0.0.1:{server.port}"


@pytest.mark.parametrize(
    ("prefix", "trickle"),
    [(b"", HEAD + b" " * 800), (HEAD, b" " * 800)],
    ids=["headers", "body"],
)
def test_connect_is_bounded_by_timeout(prefix: bytes, trickle: bytes) -> None:
    with slow(prefix, trickle) as server:
        start = time.monotonic()
        with pytest.raises((OperationTimeout, ConnectFailed), match="GET /_api/user") as e:
            connect(url(server), api_key=KEY, timeout=TIMEOUT, retries=3)
        elapsed = time.monotonic() - start
    assert elapsed < BOUND, f"connect(timeout={TIMEOUT}) took {elapsed:.1f} s"
    assert f"timeout={TIMEOUT:g}" in str(e.value)
    assert server.requests[0].startswith(b"GET /_api/user")


def _connector(server: RawServer, auth: str) -> Connector:
    settings = parse(
        TransportConfig(url(server), {"api_key": KEY, "auth": auth, "timeout": TIMEOUT}),
        environ={},
    )
    path = "producer/persistent/acme/c8global._system/c8globals.orders"
    return Connector(settings, Rest(settings), settings.ws_url, path, {}, stream="orders")


@pytest.mark.parametrize(
    ("auth", "prefix", "trickle", "first_request"),
    [
        ("otp", b"", HEAD + b" " * 800, b"POST /apid/otp"),
        ("otp", HEAD, b" " * 800, b"POST /apid/otp"),
        ("header", b"", UPGRADE, b"GET /_ws/ws/v2/producer/"),
    ],
    ids=["otp-headers", "otp-body", "upgrade-headers"],
)
def test_websocket_open_is_bounded_by_timeout(
    auth: str, prefix: bytes, trickle: bytes, first_request: bytes
) -> None:
    """One deadline covers the OTP fetch and the upgrade together."""
    with slow(prefix, trickle) as server:
        connector = _connector(server, auth)
        start = time.monotonic()
        with pytest.raises(TransportError, match=f"timeout={TIMEOUT:g}"):
            connector.open()
        elapsed = time.monotonic() - start
        connector._rest.close()
    assert elapsed < BOUND, f"open() with timeout={TIMEOUT} took {elapsed:.1f} s"
    assert server.requests[0].startswith(first_request)


def test_a_refused_port_still_gets_its_retries() -> None:
    """The deadline leaves the retry policy alone when attempts fail fast."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectFailed, match="3 attempt"):
        connect(f"macrometa+http://127.0.0.1:{port}", api_key=KEY, timeout=5, retries=3)


def test_a_kept_alive_connection_is_bounded_too() -> None:
    """The second call reuses the first one's connection; the deadline still reaches it."""
    user = b'{"error":false,"code":200,"result":[{"tenant":"acme"}]}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(user), user)
    connections: list[int] = []

    def respond(server: RawServer, conn: socket.socket) -> None:
        connections.append(1)
        conn.sendall(answer)  # the tenant, at once; the connection stays open
        if read_head(conn) is None:
            return
        for byte in HEAD:  # the next answer, a byte at a time
            if server.wait_stopped(INTERVAL):
                return
            conn.sendall(bytes([byte]))

    with (
        contextlib.closing(RawServer(respond)) as server,
        connect(url(server), api_key=KEY, timeout=TIMEOUT) as c,
    ):
        start = time.monotonic()
        with pytest.raises(OperationTimeout, match=f"timeout={TIMEOUT:g}"):
            c.streams()
        elapsed = time.monotonic() - start
    assert elapsed < BOUND, f"streams() with timeout={TIMEOUT} took {elapsed:.1f} s"
    assert len(connections) == 1  # the slow answer came on the reused connection


class TrickleTLS:
    """A TLS server behind a relay that passes its bytes on one every ``INTERVAL``: the
    handshake itself crawls (its certificate alone takes minutes). What bounds it is the socket
    timeout set to what is left of the deadline: Python applies it to the whole handshake."""

    def __init__(self, ca: trustme.CA) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(self.context)
        self._stop = threading.Event()
        self._tls = socket.create_server(("127.0.0.1", 0))
        self._front = socket.create_server(("127.0.0.1", 0))
        self.port = self._front.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept_tls)
        self._spawn(self._accept_front)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accepted(self, listener: socket.socket) -> Iterator[socket.socket]:
        listener.settimeout(0.1)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = listener.accept()
                yield conn

    def _accept_tls(self) -> None:
        with contextlib.suppress(OSError):
            for conn in self._accepted(self._tls):
                self._spawn(self._handshake, conn)

    def _handshake(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(60)
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)

    def _accept_front(self) -> None:
        with contextlib.suppress(OSError):
            for client in self._accepted(self._front):
                upstream = socket.create_connection(self._tls.getsockname()[:2])
                self._spawn(self._relay, client, upstream, 0.0)
                self._spawn(self._relay, upstream, client, INTERVAL)

    def _relay(self, src: socket.socket, dst: socket.socket, interval: float) -> None:
        with contextlib.suppress(OSError):
            src.settimeout(0.1)
            while not self._stop.is_set():
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                for i in range(len(data)) if interval else [None]:
                    if i is None:
                        dst.sendall(data)
                    elif self._stop.wait(interval):
                        return
                    else:
                        dst.sendall(data[i : i + 1])
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        for listener in (self._tls, self._front):
            listener.close()
        for thread in self._threads:
            thread.join(5)


@pytest.fixture(scope="module")
def trickle_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TrickleTLS, str]]:
    ca = trustme.CA()
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server = TrickleTLS(ca)
    yield server, str(bundle)
    server.close()


@pytest.mark.parametrize("call", ["rest", "websocket"])
def test_a_crawling_tls_handshake_is_bounded(
    call: str, trickle_tls: tuple[TrickleTLS, str]
) -> None:
    server, bundle = trickle_tls
    url = f"macrometa+https://localhost:{server.port}"
    options = {"api_key": KEY, "timeout": TIMEOUT, "ca_bundle": bundle}
    start = time.monotonic()
    with pytest.raises(TransportError, match=f"timeout={TIMEOUT:g}"):
        if call == "rest":
            connect(url, **options)
        else:
            settings = parse(TransportConfig(url, options), environ={})
            rest = Rest(settings)
            try:
                Connector(settings, rest, settings.ws_url, "producer/x", {}, stream="x").open()
            finally:
                rest.close()
    elapsed = time.monotonic() - start
    assert elapsed < BOUND, f"{call} with timeout={TIMEOUT} took {elapsed:.1f} s"
