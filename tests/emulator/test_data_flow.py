"""The emulator's data path under abuse (issue 8): bounded socket queues, bad frames, ids.

Queue sizes are read from the running emulator's own state (``Emulator._state``): that is the
memory the issue measured growing.
"""

from __future__ import annotations

import base64
import gc
import logging
import socket
import time
import weakref
from typing import Any

import pytest
from streamfw_macrometa.emulator import Emulator
from streamfw_macrometa.emulator.sockets import Socket
from streamfw_macrometa.emulator.state import RELEASE_AFTER, FabricHost
from streamfw_macrometa.wire import decode_message_id

from streamfw.api import StreamRef
from tests.emulator.helpers import Api, ack, close_code, nothing, payload, recv, send

SMALL_BUFFER = ((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)  # fills after a few frames


def fabric(emu: Emulator) -> FabricHost:
    assert emu._state is not None
    return emu._state.fabrics["_system"]


def socket_of(emu: Emulator, label_end: str) -> Socket:
    assert emu._state is not None
    (sock,) = [
        s for s in emu._state.sockets if isinstance(s, Socket) and s.label.endswith(label_end)
    ]
    return sock


def test_a_consumer_that_stops_reading_gets_a_bounded_queue(
    emulator: Emulator, api: Api, topic: str, name: str
) -> None:
    """Ack-timeout redeliveries wait for permits: the socket queue never outgrows them."""
    consumer = api.connect(
        api.ws_url("consumer", topic, name, ackTimeoutMillis="100", receiverQueueSize="20"),
        sockopt=SMALL_BUFFER,
    )
    producer = api.producer(topic)
    for _ in range(200):
        assert send(producer, b"x" * 4096)["result"] == "ok"
    sock = weakref.ref(socket_of(emulator, f"{topic}/{name}"))
    deadline = time.monotonic() + 3.0  # 30 ack timeouts; before: +20 frames queued for each
    largest = 0
    while time.monotonic() < deadline:
        live = sock()
        assert live is not None
        largest = max(largest, live.queue.qsize())
        del live
        time.sleep(0.05)
    assert largest <= 20
    consumer.close()
    producer.close()
    end = time.monotonic() + 5
    while sock() is not None and time.monotonic() < end:  # detached: nothing holds its frames
        gc.collect()
        time.sleep(0.05)
    assert sock() is None


def test_a_slow_consumer_still_gets_every_message(api: Api, topic: str, name: str) -> None:
    """Permits come back as frames are written: 3x the receiver queue flows through."""
    consumer = api.consumer(topic, name, receiverQueueSize="10")
    producer = api.producer(topic)
    for i in range(30):
        assert send(producer, str(i).encode())["result"] == "ok"
    got = []
    for _ in range(30):
        frame = recv(consumer)
        got.append(base64.b64decode(frame["payload"]))
        ack(consumer, frame)
    assert got == [str(i).encode() for i in range(30)]
    consumer.close()
    producer.close()


HOSTILE = [
    "[" * 100_000,
    '{"a":' * 100_000,
    '{"payload": ' + "[" * 100_000,
    '{"messageId": ' + "[" * 50_000 + "]" * 50_000 + "}",
    "{",
    "null",
    '"text"',
    "1e400",
]


@pytest.mark.parametrize("frame", HOSTILE, ids=lambda f: f[:16])
def test_a_bad_frame_gets_an_answer_and_the_socket_stays_open(
    api: Api, topic: str, name: str, frame: str
) -> None:
    producer = api.producer(topic)
    consumer = api.consumer(topic, name)
    producer.send(frame)
    receipt = recv(producer)
    assert receipt["result"].startswith("send-error:") and receipt["errorMsg"]
    consumer.send(frame)
    answer = recv(consumer)
    assert answer["error"] and isinstance(answer["code"], int)
    consumer.send_binary(b"\xff\xfe" + frame.encode())  # not UTF-8 either
    assert recv(consumer)["error"]
    assert send(producer, b"after")["result"] == "ok"  # both sockets still work
    delivered = recv(consumer)
    assert base64.b64decode(delivered["payload"]) == b"after"
    ack(consumer, delivered)
    assert nothing(consumer)
    producer.close()
    consumer.close()


def test_ids_never_repeat_across_emulator_restarts(name: str) -> None:
    """A client's duplicate filter cannot alias an old id with a new message."""
    seen: set[Any] = set()
    for _ in range(2):
        with Emulator.start(host="127.0.0.1", port=0) as emu:
            api = Api(emu)
            topic = api.create(name)
            producer = api.producer(topic)
            for _ in range(3):
                mid = decode_message_id(name, send(producer, b"x")["messageId"])
                assert mid not in seen
                seen.add(mid)
            producer.close()
            api.session.close()
    assert len(seen) == 6


def test_clear_backlog_and_acks_trim_the_log(
    emulator: Emulator, api: Api, topic: str, name: str
) -> None:
    """What is acked or cleared leaves the broker's log: nothing keeps cleared payloads."""
    consumer = api.consumer(topic, name, receiverQueueSize="1")
    producer = api.producer(topic)
    for _ in range(500):
        assert send(producer, b"p" * 1024)["result"] == "ok"
    broker = fabric(emulator).broker
    stats = api.streams("GET", f"/{topic}/stats").json()["result"]
    assert stats["storageSize"] == 500 * 1024
    freed = broker.freed
    r = api.streams("POST", f"/clearbacklog/{name}")
    assert r.status_code == 200, r.text
    stats = api.streams("GET", f"/{topic}/stats").json()["result"]
    assert stats["storageSize"] == 0
    assert broker.freed - freed == 500 * 1024
    for i in range(300):  # acks trim it too
        send(producer, b"%d" % i)
    received = 0
    while received < 300:
        frame = recv(consumer)
        ack(consumer, frame)
        received += base64.b64decode(frame["payload"]) != b"p" * 1024  # a cleared one: stale
    end = time.monotonic() + 3
    while broker.stats(decode_topic(topic)).storage_size and time.monotonic() < end:
        time.sleep(0.02)  # the last acks are still on their way
    assert broker.stats(decode_topic(topic)).storage_size == 0
    consumer.close()
    producer.close()


def decode_topic(topic: str) -> StreamRef:
    return StreamRef(topic.removeprefix("c8globals."))


def test_freed_memory_is_handed_back_after_a_large_clear(
    emulator: Emulator, api: Api, topic: str, name: str
) -> None:
    """After RELEASE_AFTER bytes leave the logs, the heap is trimmed (once, a second later)."""
    host = fabric(emulator)
    api.consumer(topic, name, receiverQueueSize="1").close()  # a subscription holds them
    body = b"m" * (1 << 20)
    for _ in range(RELEASE_AFTER // len(body) + 1):
        assert api.streams("POST", f"/{topic}/publish", data=body).status_code == 200
    assert api.streams("POST", f"/clearbacklog/{name}").status_code == 200
    target = host.broker.freed
    end = time.monotonic() + 5
    while host._freed_seen < target and time.monotonic() < end:
        time.sleep(0.05)
    assert host._freed_seen >= target


def test_a_frame_the_emulator_cannot_write_closes_the_socket_instead_of_hanging_it(
    emulator: Emulator, api: Api, topic: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A write failure of our own making (here: text UTF-8 cannot carry) ends in a close."""
    consumer = api.consumer(topic, name)
    sock = socket_of(emulator, name)
    with caplog.at_level(logging.ERROR, logger="streamfw"):
        emulator._loop.call_soon_threadsafe(sock.deliver, "\ud800")
        assert close_code(consumer) == 1011
    assert any("cannot write a frame" in r.getMessage() for r in caplog.records)
    again = api.consumer(topic, name)  # the subscription is free again
    producer = api.producer(topic)
    assert send(producer, b"after")["result"] == "ok"
    assert payload(recv(again)) == b"after"
