"""The asyncio consumer link and frames it cannot read: skip, count, never die; sizes bounded;
a silent server noticed. The same scripted server as test_consumer_frames.py (the threaded
link's twin of these tests): a real WebSocket on 127.0.0.1 writing frames byte by byte."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from streamfw_macrometa import config, gateway
from streamfw_macrometa.aio.consumer import AsyncMacrometaConsumer
from streamfw_macrometa.aio.link import Endpoint
from streamfw_macrometa.aio.producer import AsyncMacrometaProducer
from streamfw_macrometa.aio.rest import AsyncRest
from streamfw_macrometa.aio.session import open_session

from streamfw.api import ProducerOptions, StreamRef, TransportConfig
from streamfw.errors import RemoteProtocolError
from streamfw.message import Envelope
from tests.macrometa.test_consumer_frames import (
    BAD_FRAMES,
    KEY,
    WAIT,
    Peer,
    ScriptedServer,
    delivery,
    hold,
)

pytestmark = pytest.mark.anyio
PATH = "consumer/persistent/acme/c8global._system/c8globals.s/sub"


@contextlib.asynccontextmanager
async def consumer_on(
    server: ScriptedServer, **options: Any
) -> AsyncIterator[AsyncMacrometaConsumer]:
    """An asyncio consumer link of subscription ``sub`` on stream ``s``, talking to ``server``."""
    opts = {"api_key": KEY, "tenant": "acme", "timeout": 2.0, "reconnect_deadline": 3.0}
    settings = config.parse(
        TransportConfig(f"macrometa+http://127.0.0.1:{server.port}", {**opts, **options})
    )
    session = open_session(settings)
    endpoint = Endpoint(
        settings,
        AsyncRest(settings, session),
        settings.ws_url,
        gateway.ws_path(PATH),
        {},
        stream="s",
        subscription="sub",
    )
    link = AsyncMacrometaConsumer(endpoint, StreamRef("s"), "sub")
    try:
        await link.start()
        yield link
    finally:
        await link.close()
        await session.close()
        server.close()


@pytest.mark.parametrize("bad", BAD_FRAMES, ids=lambda b: repr(b[:24]))
async def test_a_bad_frame_is_skipped_and_counted(
    bad: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    def script(peer: Peer, n: int) -> None:
        peer.send_frame(bad)
        peer.send(delivery(2, b"after"))
        hold(peer)

    server = ScriptedServer(script)
    with caplog.at_level(logging.WARNING, "streamfw.macrometa"):
        async with consumer_on(server) as link:
            got = await link.receive(WAIT)
            assert got is not None and got.payload == b"after"
            assert link.protocol_errors == 1
            assert server.connections == 1  # skipped, no reconnect
            await link.ack(got.message_id)
    warning = [r.getMessage() for r in caplog.records if r.name == "streamfw.macrometa"]
    assert len(warning) == 1 and "skipped" in warning[0]
    assert KEY not in warning[0] and len(warning[0]) < 400


async def test_only_junk_ends_in_a_typed_error_after_the_deadline() -> None:
    def script(peer: Peer, n: int) -> None:
        while True:  # junk, again and again, on every connection
            peer.send_frame(b"\xff junk")
            time.sleep(0.05)

    server = ScriptedServer(script)
    async with consumer_on(server, reconnect_deadline=1.0) as link:
        start = time.monotonic()
        with pytest.raises(RemoteProtocolError, match="unreadable for 1 s; last: "):
            while time.monotonic() - start < 10:
                await link.receive(0.5)
        assert time.monotonic() - start < 5
        assert link.protocol_errors >= 10


async def test_an_oversized_frame_is_refused_from_its_header() -> None:
    """The header announces 200 MB: refused at once, nothing allocated, the link reconnects."""

    def script(peer: Peer, n: int) -> None:
        if n == 0:
            peer.announce(200 * 1024 * 1024)
        else:
            peer.send(delivery(3, b"fine"))
        hold(peer)

    server = ScriptedServer(script)
    async with consumer_on(server) as link:
        got = await link.receive(WAIT)
        assert got is not None and got.payload == b"fine"
        assert link.protocol_errors == 1 and server.connections == 2


async def test_fragments_count_together_against_the_limit() -> None:
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
    async with consumer_on(server, max_frame_size=limit) as link:
        got = await link.receive(WAIT)
        assert got is not None and got.payload == b"small"
        assert link.protocol_errors == 1 and server.connections == 2


async def test_a_frame_at_the_limit_is_accepted() -> None:
    body = json.dumps(delivery(6, b"y" * 3000)).encode()

    def script(peer: Peer, n: int) -> None:
        peer.send_frame(body)
        hold(peer)

    server = ScriptedServer(script)
    async with consumer_on(server, max_frame_size=len(body)) as link:
        got = await link.receive(WAIT)
        assert got is not None and got.payload == b"y" * 3000
        assert link.protocol_errors == 0


async def test_a_silent_server_is_noticed_after_ping_interval_plus_timeout() -> None:
    times: list[float] = []

    def script(peer: Peer, n: int) -> None:
        times.append(time.monotonic())
        if n == 0:
            time.sleep(30)  # never reads: pings go unanswered
        else:
            hold(peer)

    server = ScriptedServer(script)
    async with consumer_on(server, ping_interval=0.6, timeout=0.6, reconnect_deadline=5.0) as link:
        deadline = time.monotonic() + 10
        while server.connections < 2 and time.monotonic() < deadline:
            await link.receive(0.05)
        assert server.connections == 2
        noticed = times[1] - times[0]
        assert 1.2 <= noticed < 1.2 + 1.0  # ping_interval + timeout, plus at most a few ticks
        assert link.failure is None


async def test_a_producer_reconnects_on_an_unreadable_receipt_and_resends() -> None:
    """Only a new connection tells what became of an unconfirmed send: reconnect, resend."""

    def script(peer: Peer, n: int) -> None:
        text = peer.read_text()
        assert text is not None
        if n == 0:
            peer.send_frame(b"\xff not a receipt")
            hold(peer)
        else:
            context = json.loads(text)["context"]
            mid = delivery(7)["messageId"]
            peer.send({"result": "ok", "messageId": mid, "context": context})
            hold(peer)

    server = ScriptedServer(script)
    opts = {"api_key": KEY, "tenant": "acme", "timeout": 2.0, "reconnect_deadline": 3.0}
    settings = config.parse(TransportConfig(f"macrometa+http://127.0.0.1:{server.port}", opts))
    session = open_session(settings)
    endpoint = Endpoint(
        settings,
        AsyncRest(settings, session),
        settings.ws_url,
        gateway.ws_path("producer/persistent/acme/c8global._system/c8globals.s"),
        {},
        stream="s",
    )
    link = AsyncMacrometaProducer(endpoint, StreamRef("s"), ProducerOptions())
    try:
        await link.start()
        future = await link.send(Envelope(b"once"))
        message_id = await asyncio.wait_for(future, WAIT)
        assert message_id.entry == 7
        assert link.protocol_errors == 1 and server.connections == 2
        assert [json.loads(t)["payload"] for t in server.peers[1].received] == ["b25jZQ=="]
    finally:
        await link.close()
        await session.close()
        server.close()
