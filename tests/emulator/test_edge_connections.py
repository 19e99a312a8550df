"""The emulator's connection limit and read deadlines, probed with raw sockets on 127.0.0.1.

Junk connections (silent, a request head that never ends, a body that never ends) must not
lock out a client with credentials, and each is closed by a deadline or to make room.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import trustme
from streamfw_macrometa.emulator import Emulator
from streamfw_macrometa.emulator.edge import FD_HEADROOM

from tests.emulator.helpers import Api, payload, recv, send

SLOW_AUTH_HEAD = (
    b"POST /_open/auth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n{"
)
JUNK: dict[str, bytes] = {
    "silent": b"",
    "endless head": b"GET /_api/user HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
    "endless body": SLOW_AUTH_HEAD,
}


@contextlib.contextmanager
def junk(emu: Emulator, count: int, first: bytes) -> Iterator[list[socket.socket]]:
    """``count`` raw connections that each send ``first`` and then nothing."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_connection((emu.host, emu.port), timeout=5)
            if first:
                s.sendall(first)
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def closed_by_server(s: socket.socket, within: float = 5.0) -> bytes | None:
    """What the server sent before closing ``s`` (None: still open after ``within`` s)."""
    s.settimeout(within)
    got = b""
    try:
        while chunk := s.recv(4096):
            got += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return got


def wait_until(check: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.mark.parametrize("kind", sorted(JUNK))
def test_junk_does_not_lock_out_clients_with_credentials(kind: str) -> None:
    """Five times the limit in junk: every authenticated call still works, the count holds."""
    with Emulator.start(port=0, max_connections=20, header_timeout=60, body_timeout=60) as emu:
        api = Api(emu)
        topic = api.create("held")
        consumer, producer = api.consumer(topic, "s"), api.producer(topic)
        with junk(emu, 100, JUNK[kind]):
            assert emu.open_connections <= emu.max_connections + 1
            for i in range(5):
                assert api.streams("GET", "").status_code == 200
                assert send(producer, b"%d" % i)["result"] == "ok"
                assert payload(recv(consumer)) == b"%d" % i
            fresh = Api(emu)  # a new connection with a key gets in too
            assert fresh.streams("GET", "").status_code == 200
            fresh.session.close()
            assert emu.open_connections <= emu.max_connections + 1


def test_full_of_busy_trusted_connections_answers_503_then_recovers(name: str) -> None:
    with Emulator.start(port=0, max_connections=2) as emu:
        api = Api(emu)
        topic = api.create(name)
        api.session.close()
        held = [api.consumer(topic, "s"), api.producer(topic)]
        r = requests.get(emu.url + "/_api/user", headers=api.headers, timeout=5)
        assert r.status_code == 503 and "Too many connections (limit 2)" in r.text
        held.pop().close()
        assert wait_until(lambda: emu.open_connections < 2)
        assert requests.get(emu.url + "/_api/user", headers=api.headers, timeout=5).ok


@pytest.mark.parametrize("kind", ["silent", "endless head"])
def test_a_request_head_has_a_deadline(kind: str) -> None:
    with Emulator.start(port=0, header_timeout=0.3) as emu, junk(emu, 1, JUNK[kind]) as socks:
        if kind == "endless head":  # one byte at a time does not extend the deadline
            for _ in range(5):
                time.sleep(0.1)
                with contextlib.suppress(OSError):
                    socks[0].sendall(b"x")
        assert closed_by_server(socks[0]) == b""
        assert wait_until(lambda: emu.open_connections == 0)


@pytest.mark.parametrize(
    ("head", "auth"),
    [
        (SLOW_AUTH_HEAD, False),  # public route: no credentials needed
        (
            b"POST /_fabric/_system/_api/streams/x?global=true HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 1000\r\n",
            True,
        ),
    ],
)
def test_a_request_body_has_a_deadline(head: bytes, auth: bool) -> None:
    with Emulator.start(port=0, body_timeout=0.3) as emu:
        if auth:
            head += f"Authorization: apikey {emu.api_key}\r\n\r\n".encode()
        with junk(emu, 1, head) as socks:
            socks[0].settimeout(5)
            answer = socks[0].recv(4096)  # aiohttp then reads on for up to 10 s and closes
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"Connection: close" in answer
        assert b"request body not received within 0.3 s" in answer


def test_idle_keep_alive_connections_are_closed() -> None:
    with Emulator.start(port=0, idle_timeout=0.3) as emu:
        request = (
            f"GET /_api/user HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: apikey {emu.api_key}"
        )
        with junk(emu, 1, request.encode() + b"\r\n\r\n") as socks:
            answer = closed_by_server(socks[0])
        assert answer is not None and answer.startswith(b"HTTP/1.1 200 ")


_SERVE_AT_256_FILES = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
from streamfw_macrometa.emulator import Emulator
from streamfw_macrometa.emulator.edge import FD_HEADROOM
emu = Emulator.start(port=0, header_timeout=60)
print(emu.port, emu.max_connections, flush=True)
sys.stdin.read()
emu.stop()
"""


def test_connections_beyond_ulimit_do_not_starve_the_server(tmp_path: Path) -> None:
    """At ulimit -n 256, silent connections left accept() failing for everyone."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2048:
        pytest.fail("this test needs ulimit -n >= 2048 in the test process")
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE_AT_256_FILES],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=tmp_path,  # not the checkout: the installed streamfw, as a user runs it
        )
    try:
        assert proc.stdout is not None
        port, limit = map(int, proc.stdout.readline().split())
        assert limit == 256 - FD_HEADROOM  # lowered to fit, with room for other files
        headers = {"Authorization": "apikey demo.streamfw.emulator"}
        url = f"http://127.0.0.1:{port}/_api/user"
        socks = [socket.socket() for _ in range(1000)]
        for sock in socks:  # no waiting: the kernel retries what the accept queue drops
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        try:
            for _ in range(5):
                with requests.Session() as s:
                    assert s.get(url, headers=headers, timeout=5).status_code == 200
        finally:
            for sock in socks:
                sock.close()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "out of system resource" not in errors.read_text()


def test_a_tls_handshake_has_the_head_deadline(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued = ca.issue_cert("127.0.0.1")
    issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    emu = Emulator.start(port=0, tls_cert=str(cert), tls_key=str(key), header_timeout=0.3)
    with emu, junk(emu, 1, b"\x16\x03\x01") as socks:  # a ClientHello that never ends
        assert closed_by_server(socks[0]) == b""


@pytest.mark.parametrize(
    "option", ["header_timeout", "body_timeout", "idle_timeout", "ws_heartbeat"]
)
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_deadlines_must_be_positive_finite_seconds(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        Emulator.start(port=0, **{option: value})


def test_a_path_with_a_newline_gets_the_json_envelope(api: Api) -> None:
    r = api.request("GET", "/_fabric/%0A/_api/streams/a%0Ab/subscriptions")
    assert r.status_code == 404 and r.json()["error"] is True  # the envelope, not text
