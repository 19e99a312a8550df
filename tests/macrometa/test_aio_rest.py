"""REST on the native asyncio macrometa transport: the sync client's retry policy, one
deadline per call, bounded answers, errors that name where and never a secret."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import streamfw.aio
from streamfw.errors import (
    AlreadyExists,
    ConnectFailed,
    OperationTimeout,
    RemoteProtocolError,
    TransportError,
)
from tests.macrometa.conftest import KEY
from tests.macrometa.fake_http import FakeServer, RawServer
from tests.macrometa.test_rest import err, raw_server

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


def connect(port: int, **options: Any) -> streamfw.aio.Opening[streamfw.aio.Client]:
    opts = {"api_key": KEY, "timeout": 2.0, **options}
    return streamfw.aio.connect(f"macrometa+http://127.0.0.1:{port}", **opts)


async def test_idempotent_calls_retry_transient_statuses(fake: FakeServer) -> None:
    path = "/_fabric/_system/_api/streams"
    fake.answers[("GET", path)] = [err(503, "busy"), err(502, "gw"), (200, {"result": []})]
    async with connect(fake.port, retries=3) as client:
        assert await client.streams() == []
    assert fake.paths("GET").count(path) == 3


async def test_non_idempotent_calls_do_not_retry_a_server_answer(fake: FakeServer) -> None:
    fake.answers[("POST", "/_fabric/_system/_api/streams/x")] = [err(503, "busy")]
    async with connect(fake.port, retries=3) as client:
        with pytest.raises(TransportError, match="503"):
            await client.stream("x").create()
    assert len(fake.paths("POST")) == 1


async def test_status_maps_through_the_one_table(fake: FakeServer) -> None:
    fake.answers[("POST", "/_fabric/_system/_api/streams/x")] = [err(409, "exists")]
    async with connect(fake.port) as client:
        with pytest.raises(AlreadyExists):
            await client.stream("x").create()
    _, _, headers = fake.requests[-1]
    assert headers["Authorization"] == f"apikey {KEY}"


async def test_unreachable_server_fails_fast_naming_where() -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ConnectFailed) as e:
        await streamfw.aio.connect(
            f"macrometa+http://127.0.0.1:{port}?fabric=f", api_key=KEY, retries=3
        )
    assert time.monotonic() - start < 5
    text = str(e.value)
    assert f"GET /_api/user at http://127.0.0.1:{port}" in text
    assert "3 attempt" in text and "refused" in text.lower()
    assert "?" not in text and "S3cr3t" not in text


async def test_timeout_bounds_the_whole_call() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(OperationTimeout, match=r"timeout=0\.3"):
            await connect(port, timeout=0.3, retries=3)
        assert time.monotonic() - start < 2


async def test_announced_oversize_body_is_refused_before_reading_it() -> None:
    def announce(server: RawServer, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 314572800\r\n\r\n{")
        while not server.stopped:  # and then nothing: a refusal must not wait for the body
            time.sleep(0.05)

    with (
        raw_server(announce) as server,
        pytest.raises(RemoteProtocolError, match="Content-Length 314572800") as e,
    ):
        await connect(server.port, timeout=30)
    assert f"max_response_bytes={16 * MiB}" in str(e.value)


async def test_unannounced_oversize_body_is_refused_while_reading() -> None:
    piece = b"x" * 65536
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

    def stream(server: RawServer, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4096):  # 256 MiB if nobody stops it
            conn.sendall(frame)
            server.count(len(piece))

    with (
        raw_server(stream) as server,
        pytest.raises(RemoteProtocolError, match=f"more than {MiB} bytes read"),
    ):
        await connect(server.port, timeout=30, max_response_bytes=MiB)
    assert server.sent < 64 * MiB


async def test_compressed_body_is_limited_by_its_decoded_size() -> None:
    bomb = gzip.compress(b"0" * (64 * MiB))

    def deflate(server: RawServer, conn: socket.socket) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
        conn.sendall(head.encode() + bomb)

    with (
        raw_server(deflate) as server,
        pytest.raises(RemoteProtocolError, match="max_response_bytes=1048576"),
    ):
        await connect(server.port, timeout=30, max_response_bytes=MiB)


async def test_a_cancelled_admin_call_leaves_the_client_usable(fake: FakeServer) -> None:
    path = "/_fabric/_system/_api/streams"
    fake.answers[("GET", path)] = [(200, {"result": []})]
    async with connect(fake.port) as client:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.streams(), 0)
        assert await client.streams() == []
