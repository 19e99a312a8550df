"""WebSocket peers that vanish: mid-upgrade (a routine disconnect) or half-open (heartbeat)."""

from __future__ import annotations

import base64
import logging
import os
import socket
import struct
import time

import pytest
import websocket
from streamfw_macrometa.emulator import Emulator
from streamfw_macrometa.emulator.edge import MAX_CLOSE_REASON, close_reason

from tests.emulator.helpers import Api, nothing, payload, recv, refused, send


def _upgrade_and_reset(emu: Emulator, path: str) -> None:
    """Send a valid upgrade request, then reset the connection before reading the answer."""
    s = socket.create_connection((emu.host, emu.port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: apikey {emu.api_key}\r\n\r\n".encode()
    )
    s.close()


def test_a_client_leaving_mid_upgrade_is_not_an_error(
    caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.DEBUG)
    with Emulator.start(port=0) as emu:
        api = Api(emu)
        topic = api.create(name)
        for kind, sub in (("consumer", "/s"), ("producer", ""), ("reader", "")):
            path = f"/_ws/ws/v2/{kind}/persistent/{emu.tenant}/c8global._system/{topic}{sub}"
            for _ in range(10):
                _upgrade_and_reset(emu, path)
        time.sleep(0.3)  # the loop thread handles the resets after we return
        consumer = api.consumer(topic, "s")  # the exclusive subscription was let go each time
        assert send(api.producer(topic), b"m")["result"] == "ok"
        assert payload(recv(consumer)) == b"m"
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]


def test_a_consumer_that_stops_answering_pings_frees_its_subscription(name: str) -> None:
    """Half-open: the process froze or the cable went; TCP alone would wait for many minutes."""
    heartbeat = 0.4  # dropped at most 1.5 x heartbeat after it was last heard from
    with Emulator.start(port=0, ws_heartbeat=heartbeat) as emu:
        api = Api(emu)
        topic = api.create(name)
        frozen = api.consumer(topic, "s")  # websocket-client answers pings only inside recv()
        assert send(api.producer(topic), b"held")["result"] == "ok"
        held = recv(frozen)
        assert held["redeliveryCount"] == 0  # ... and now it never reads again
        assert refused(api, api.ws_url("consumer", topic, "s")).status_code == 409
        started = time.monotonic()
        while True:
            try:
                back = api.consumer(topic, "s")
                break
            except websocket.WebSocketBadStatusException as exc:
                assert exc.status_code == 409
                assert time.monotonic() - started < 1.5 * heartbeat + 5, "never freed"
                time.sleep(0.1)
        again = recv(back)  # the unacknowledged message came back for redelivery
        assert again["messageId"] == held["messageId"] and again["redeliveryCount"] == 0
        frozen.close()


def test_a_consumer_that_answers_pings_is_kept(name: str) -> None:
    heartbeat = 0.2
    with Emulator.start(port=0, ws_heartbeat=heartbeat) as emu:
        api = Api(emu)
        topic = api.create(name)
        idle = api.consumer(topic, "s")
        deadline = time.monotonic() + 10 * heartbeat
        while time.monotonic() < deadline:  # silent but reading: pongs go back from recv()
            assert nothing(idle, heartbeat / 2)
        assert send(api.producer(topic), b"still here")["result"] == "ok"
        assert payload(recv(idle)) == b"still here"


def test_heartbeat_zero_turns_pings_off(name: str) -> None:
    with Emulator.start(port=0, ws_heartbeat=0) as emu:
        api = Api(emu)
        consumer = api.consumer(api.create(name), "s")
        consumer.settimeout(1.0)
        with pytest.raises(websocket.WebSocketTimeoutException):
            consumer.recv_data(control_frame=True)  # a ping would come back as a frame here


def test_a_producer_that_reads_only_after_sending_is_kept(name: str) -> None:
    """pyC8's producer calls recv() only for a receipt: silence between sends is normal."""
    heartbeat = 0.2
    with Emulator.start(port=0, ws_heartbeat=heartbeat) as emu:
        api = Api(emu)
        topic = api.create(name)
        producer = api.producer(topic)
        assert send(producer, b"first")["result"] == "ok"
        time.sleep(10 * heartbeat)  # pings, if any, go unanswered meanwhile
        assert send(producer, b"second")["result"] == "ok"


@pytest.mark.parametrize("text", ["x" + "é" * 100, "€" * 60, "short", "🙂" * 40, "a\ud800b"])
def test_a_close_reason_is_cut_on_a_character_boundary(text: str) -> None:
    data = close_reason(text)
    assert len(data) <= MAX_CLOSE_REASON
    kept = data.decode("utf-8")  # strict: a split character would raise here
    whole = text.encode("utf-8", "replace").decode()  # a lone surrogate is sent as "?"
    assert whole.startswith(kept)
    assert kept == whole or len(data) > MAX_CLOSE_REASON - 4  # as much as fits, no less


def test_a_socket_closed_with_a_long_non_ascii_reason_gets_valid_utf8(name: str) -> None:
    reason = "x" + "é" * 100  # 201 bytes; a byte cut at 120 or 123 splits an é
    with Emulator.start(port=0) as emu:
        api = Api(emu)
        consumer = api.consumer(api.create(name), "s")
        (session,) = emu._state.fabrics["_system"].sessions.values()
        emu._loop.call_soon_threadsafe(session.close_soon, 1001, reason)
        consumer.settimeout(5)
        opcode, data = consumer.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 1001
        assert reason.startswith(data[2:].decode("utf-8"))
        assert len(data) - 2 == 123  # 1 + 61 x 2 bytes: all whole characters that fit
