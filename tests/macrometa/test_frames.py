"""What a macrometa link does with frames it cannot read: skip, count, never die; sizes are
bounded; a silent or busy server is noticed; a producer learns its sends' fate by reconnecting.

Every scenario runs on both links, the threaded one (websocket-client) and the asyncio one
(aiohttp), through ``client_api`` (tests/macrometa/apis.py), against the scripted server of
tests/macrometa/scripted.py: a real WebSocket on 127.0.0.1 whose frames the test writes byte by
byte, so it can send what no real broker would.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import struct
import time

import pytest
from streamfw_macrometa.config import DEFAULT_MAX_FRAME_SIZE

from streamfw.errors import ConnectionLost, OutcomeUnknown, RemoteProtocolError
from streamfw.message import Envelope
from tests.macrometa.apis import Api, ProducerLink
from tests.macrometa.conftest import KEY
from tests.macrometa.scripted import WAIT, Peer, ScriptedServer, answer_with, delivery, hold

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
# The reason a frame of b"\xff..." is unreadable, in the same words on both links.
NOT_UTF8 = re.escape(
    "Failed to de-serialize from JSON: 'utf-8' codec can't decode byte 0xff in position 0:"
    " invalid start byte"
)


@pytest.mark.parametrize("bad", BAD_FRAMES, ids=lambda b: repr(b[:24]))
def test_a_bad_frame_is_skipped_and_counted(
    client_api: Api, bad: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    def script(peer: Peer, n: int) -> None:
        peer.send_frame(bad)
        peer.send(delivery(2, b"after"))
        hold(peer)

    server = ScriptedServer(script)
    with caplog.at_level(logging.WARNING, "streamfw.macrometa"):
        link = client_api.consumer_on(server)
        got = link.receive(WAIT)
        assert got is not None and got.payload == b"after"
        assert link.protocol_errors == 1
        assert server.connections == 1  # skipped, no reconnect
        link.ack(got.message_id)
    warning = [r.getMessage() for r in caplog.records if r.name == "streamfw.macrometa"]
    assert len(warning) == 1 and "skipped" in warning[0]
    assert KEY not in warning[0] and len(warning[0]) < 400


def test_only_junk_ends_in_a_typed_error_after_the_deadline(client_api: Api) -> None:
    def script(peer: Peer, n: int) -> None:
        while True:  # junk, again and again, on every connection
            peer.send_frame(b"\xff junk")
            time.sleep(0.05)

    link = client_api.consumer_on(ScriptedServer(script), reconnect_deadline=0.5)
    start = time.monotonic()
    with pytest.raises(RemoteProtocolError, match=f"unreadable for 0.5 s; last: {NOT_UTF8}$"):
        while time.monotonic() - start < 10:
            link.receive(0.5)
    assert time.monotonic() - start < 5
    assert link.protocol_errors >= 5  # one every 0.05 s, reconnecting after each


def test_an_oversized_frame_is_refused_from_its_header(client_api: Api) -> None:
    """The header announces 200 MB: refused at once, nothing allocated, the link reconnects."""

    def script(peer: Peer, n: int) -> None:
        if n == 0:
            peer.announce(200 * 1024 * 1024)
        else:
            peer.send(delivery(3, b"fine"))
        hold(peer)

    server = ScriptedServer(script)
    link = client_api.consumer_on(server)
    got = link.receive(WAIT)
    assert got is not None and got.payload == b"fine"
    assert link.protocol_errors == 1 and server.connections == 2


def test_fragments_count_together_against_the_limit(client_api: Api) -> None:
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
    link = client_api.consumer_on(server, max_frame_size=limit)
    got = link.receive(WAIT)
    assert got is not None and got.payload == b"small"
    assert link.protocol_errors == 1 and server.connections == 2


def test_a_frame_at_the_limit_is_accepted(client_api: Api) -> None:
    body = json.dumps(delivery(6, b"y" * 3000)).encode()

    def script(peer: Peer, n: int) -> None:
        peer.send_frame(body)
        hold(peer)

    link = client_api.consumer_on(ScriptedServer(script), max_frame_size=len(body))
    got = link.receive(WAIT)
    assert got is not None and got.payload == b"y" * 3000
    assert link.protocol_errors == 0


def test_a_silent_server_is_noticed_after_ping_interval_plus_timeout(client_api: Api) -> None:
    """The server stops answering (pings included): reconnect after ping_interval + timeout."""
    times: list[float] = []

    def script(peer: Peer, n: int) -> None:
        times.append(time.monotonic())
        if n == 0:
            time.sleep(30)  # never reads: pings go unanswered
        else:
            hold(peer)

    server = ScriptedServer(script)
    link = client_api.consumer_on(server, ping_interval=0.4, timeout=0.4, reconnect_deadline=5.0)
    deadline = time.monotonic() + 10
    while server.connections < 2 and time.monotonic() < deadline:
        link.receive(0.05)
    assert server.connections == 2
    noticed = times[1] - times[0]
    assert 0.8 <= noticed < 0.8 + 1.0  # ping_interval + timeout, plus at most a few ticks
    assert link.failure is None


def test_busy_is_retried_until_busy_deadline_then_connection_lost(client_api: Api) -> None:
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
    link = client_api.consumer_on(server, reconnect_deadline=0.3, busy_deadline=1.0)
    with pytest.raises(ConnectionLost, match=r"after 1 s: .*HTTP 409"):
        link.receive(WAIT)
    took = time.monotonic() - start
    assert 0.9 <= took < 3
    assert refusals and refusals[-1] - refusals[0] > 0.6  # well past reconnect_deadline


def test_a_producer_reconnects_on_an_unreadable_receipt_and_resends(client_api: Api) -> None:
    """Only a new connection tells what became of an unconfirmed send: reconnect, resend."""

    def script(peer: Peer, n: int) -> None:
        text = peer.read_text()
        assert text is not None
        if n == 0:
            peer.send_frame(b"\xff not a receipt")
        else:
            context = json.loads(text)["context"]
            peer.send({"result": "ok", "messageId": delivery(7)["messageId"], "context": context})
        hold(peer)

    server = ScriptedServer(script)
    link = client_api.producer_on(server)
    assert link.send(Envelope(b"once")).result(WAIT).entry == 7
    assert link.protocol_errors == 1 and server.connections == 2
    assert [json.loads(t)["payload"] for t in server.peers[1].received] == ["b25jZQ=="]


def test_a_producer_answered_with_junk_reconnects_then_fails_typed(client_api: Api) -> None:
    """Unreadable receipts: the producer reconnects (to learn its sends' fate), and after
    reconnect_deadline of nothing but junk it fails with RemoteProtocolError, not a loop."""

    def script(peer: Peer, n: int) -> None:
        while peer.read_text() is not None:
            peer.send_frame(b'{"result": 7}')  # a receipt whose result is not a string

    server = ScriptedServer(script)
    link = client_api.producer_on(server, reconnect_deadline=0.5)
    start = time.monotonic()
    future = link.send(Envelope(b"x"))  # resent after each reconnect, answered with junk
    with pytest.raises(Exception) as err:
        future.result(10)
    assert isinstance(err.value, RemoteProtocolError) or isinstance(
        err.value.__cause__, RemoteProtocolError
    ), repr(err.value)
    assert "unreadable for 0.5 s" in str(err.value) + str(err.value.__cause__)
    assert time.monotonic() - start < 6
    assert server.connections >= 2 and link.protocol_errors >= 2


def _send_fails(link: ProducerLink, within: float) -> BaseException:
    """The error a send fails with (the link's own, if wrapped in ``OutcomeUnknown``)."""
    with pytest.raises(Exception) as err:
        link.send(Envelope(b"x")).result(within)
    error = err.value
    return error.__cause__ if isinstance(error, OutcomeUnknown) and error.__cause__ else error


def test_a_server_never_answering_a_close_cannot_hold_off_the_give_up(client_api: Api) -> None:
    """Junk on every connection and no answer to close frames: the link gives up after
    reconnect_deadline of junk, as when closes are answered; the time it takes to let a
    connection go neither stalls it nor starts the run of bad frames afresh."""
    server = ScriptedServer(answer_with(b"\xff junk", answer_close=False))
    link = client_api.producer_on(server, reconnect_deadline=1.0, timeout=3.0)
    start = time.monotonic()
    error = _send_fails(link, within=10)
    took = time.monotonic() - start
    assert isinstance(error, RemoteProtocolError), repr(error)
    assert re.search(f"unreadable for 1 s; last: {NOT_UTF8}$", str(error)), str(error)
    assert took < 1.0 + 1.0  # a wait for the close answer (timeout, 3 s) would be past this
    assert server.connections >= 2


@pytest.mark.parametrize("junk", ["unreadable receipts", "oversized deliveries"])
def test_bad_frames_on_every_connection_are_not_answered_by_a_reconnect_storm(
    client_api: Api, junk: str
) -> None:
    """Reconnects after a bad frame back off as after a failed connect: a server answering
    every connection with junk sees a few connections a second, not hundreds."""
    if junk == "unreadable receipts":
        server = ScriptedServer(answer_with(b'{"result": 7}'))
        producer = client_api.producer_on(server, reconnect_deadline=30.0)
        producer.send(Envelope(b"x"))  # resent on every connection, answered with junk
    else:

        def script(peer: Peer, n: int) -> None:
            peer.announce(200 * 1024 * 1024)
            hold(peer)

        server = ScriptedServer(script)
        client_api.consumer_on(server, reconnect_deadline=30.0)
    time.sleep(1.0)
    # backoff from 0.1 s, doubling: about 5 connections in the first second (before: 400-900)
    assert 2 <= server.connections < 20


def test_only_oversized_messages_end_in_the_same_words_on_both_links(client_api: Api) -> None:
    """A server sending nothing but messages over max_frame_size: the give-up names the limit
    in the words both links share (the threaded one adds the size the header announced)."""

    def script(peer: Peer, n: int) -> None:
        peer.announce(200 * 1024 * 1024)
        hold(peer)

    link = client_api.consumer_on(ScriptedServer(script), reconnect_deadline=0.5)
    start = time.monotonic()
    with pytest.raises(RemoteProtocolError) as err:
        while time.monotonic() - start < 10:
            link.receive(0.5)
    limit = re.escape(f"a message over max_frame_size ({DEFAULT_MAX_FRAME_SIZE:,} bytes)")
    assert re.search(
        f"unreadable for 0.5 s; last: {limit}(: [0-9,]+ bytes or more)?$", str(err.value)
    )
