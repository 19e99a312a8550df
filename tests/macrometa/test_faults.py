"""Connections cut mid-stream by a proxy: no confirmed message lost, nothing hangs.

Delivery is at-least-once: a message whose receipt died with the connection is sent again,
so duplicates (same value, different message id) are allowed; a message id once acked must
never be shown again. The scenarios taking ``make_api_client`` run on the sync and the asyncio
client (tests/macrometa/apis.py).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable

import pytest

from streamfw.client import Client
from streamfw.errors import ConnectionLost, OutcomeUnknown
from streamfw.message import MessageId
from streamfw.testing.contract import unique
from tests.macrometa.proxy import Proxy

N = 1500


def test_cuts_lose_no_confirmed_message(
    proxy: Proxy, make_api_client: Callable[..., Client]
) -> None:
    client = make_api_client(f"macrometa+http://127.0.0.1:{proxy.port}", reconnect_deadline=15.0)
    s = client.stream(unique("faults")).create()
    consumer = s.consumer("sub", receiver_queue_size=100)
    producer = s.producer(max_pending=200)
    received: dict[int, int] = {}
    acked: set[MessageId] = set()
    reshown: list[MessageId] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            msg = consumer.receive(0.2)
            if msg is None:
                continue
            if msg.id in acked:
                reshown.append(msg.id)
            received[msg.value] = received.get(msg.value, 0) + 1
            msg.ack()
            acked.add(msg.id)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    futures: list[cf.Future[MessageId]] = []
    cuts = 0
    for i in range(N):
        futures.append(producer.send_async(i))
        if i % 300 == 150:
            cuts += bool(proxy.cut())
    _, pending = cf.wait(futures, timeout=30)
    assert not pending, f"{len(pending)} sends neither confirmed nor failed in 30 s"
    confirmed = [i for i, f in enumerate(futures) if f.exception() is None]
    assert len(confirmed) == N  # the deadline is long enough for every resend
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not set(confirmed) <= set(received):
        time.sleep(0.05)
    stop.set()
    reader.join(5)
    assert cuts >= 3 and proxy.connections >= 4  # really reconnected
    missing = sorted(set(confirmed) - set(received))
    assert not missing, f"confirmed but never delivered: {missing[:10]}"
    assert not reshown, "a message id came back after its ack"
    producer.close()
    consumer.close()


def test_unacked_come_back_acked_do_not(
    proxy: Proxy, make_api_client: Callable[..., Client]
) -> None:
    client = make_api_client(f"macrometa+http://127.0.0.1:{proxy.port}")
    s = client.stream(unique("redeliver")).create()
    with s.consumer("sub") as c, s.producer() as p:
        for i in range(4):
            p.send(i)
        got = [c.receive(5) for _ in range(4)]
        got[0].ack()
        got[2].ack()
        proxy.cut()
        again = [c.receive(5), c.receive(5)]
        assert sorted(m.value for m in again) == [1, 3]
        assert all(m.redelivery_count == 0 for m in again)  # a cut is no failure (Pulsar)
        for m in again:
            m.ack()
        assert c.receive(0.5) is None


def test_reader_resumes_after_the_last_message_taken(
    proxy: Proxy, make_api_client: Callable[..., Client]
) -> None:
    client = make_api_client(f"macrometa+http://127.0.0.1:{proxy.port}")
    s = client.stream(unique("reader")).create()
    with s.consumer("keep"), s.producer() as p:  # a durable subscription keeps the log
        for i in range(3):
            p.send(i)
        with s.reader("earliest") as r:
            assert r.receive(5).value == 0
            time.sleep(0.2)  # let the other two sit in the client queue
            proxy.cut()
            p.send(3)
            assert [r.receive(5).value for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("deadline", [1.0])
def test_gives_up_with_a_typed_error(
    proxy: Proxy, make_api_client: Callable[..., Client], deadline: float
) -> None:
    client = make_api_client(
        f"macrometa+http://127.0.0.1:{proxy.port}", reconnect_deadline=deadline
    )
    s = client.stream(unique("gone")).create()
    c = s.consumer("sub")
    p = s.producer()
    proxy.refusing.set()
    proxy.cut()
    start = time.monotonic()
    late = p.send_async("into the void")
    # ConnectionLost if it never left; OutcomeUnknown (caused by it) if the dying socket took it
    with pytest.raises((ConnectionLost, OutcomeUnknown), match="gave up reconnecting") as lost:
        late.result(deadline + 5)
    assert isinstance(lost.value, ConnectionLost) or isinstance(
        lost.value.__cause__, ConnectionLost
    )
    with pytest.raises(ConnectionLost, match="gave up reconnecting") as e:
        c.receive(deadline + 5)
    assert time.monotonic() - start < deadline + 5
    assert "127.0.0.1" in str(e.value) and "?" not in str(e.value)
    with pytest.raises(ConnectionLost):
        p.send("still gone", timeout=1)
    c.close()
    p.close()  # the link failed: nothing left to flush


def test_dead_peer_found_by_pings(proxy: Proxy, make_client: Callable[..., Client]) -> None:
    """The server side vanishes without a FIN reaching us: pings find it, links reconnect."""
    client = make_client(
        f"macrometa+http://127.0.0.1:{proxy.port}",
        ping_interval=0.4,
        timeout=1.0,
        reconnect_deadline=10.0,
    )
    s = client.stream(unique("silent")).create()
    with s.consumer("sub") as c, s.producer() as p:
        before = proxy.connections
        proxy.half_open()
        future = p.send_async("through the silence")
        assert future.result(10).stream == s.name  # resent on the new connection
        assert c.receive(10).value == "through the silence"
        assert proxy.connections >= before + 2


def test_reconnect_waits_out_a_busy_exclusive_subscription(
    proxy: Proxy, make_client: Callable[..., Client]
) -> None:
    """After a drop the server may still hold the old consumer: 409s are retried, not fatal."""
    client = make_client(f"macrometa+http://127.0.0.1:{proxy.port}", reconnect_deadline=10.0)
    s = client.stream(unique("lag")).create()
    with s.consumer("sub") as c:
        before = proxy.connections
        proxy.client_side_cut(server_lag=1.0)
        start = time.monotonic()
        with s.producer() as p:
            p.send("after the lag")
        assert c.receive(10).value == "after the lag"
        assert time.monotonic() - start >= 0.9  # it could not attach before the server let go
        assert proxy.connections >= before + 3  # several refused attempts, then the good one


def test_flush_and_a_full_window_time_out(proxy: Proxy, make_client: Callable[..., Client]) -> None:
    from streamfw.errors import NotSent, SendTimeout

    client = make_client(f"macrometa+http://127.0.0.1:{proxy.port}", ping_interval=60.0)
    s = client.stream(unique("flush")).create()
    p = s.producer(max_pending=2, send_timeout=0.3)
    proxy.half_open()  # receipts stop coming; nothing notices for a minute
    first = [p.send_async(i) for i in range(2)]
    with pytest.raises(SendTimeout, match="unconfirmed"):
        p.flush(0.3)
    with pytest.raises(NotSent, match="2 sends still unconfirmed"):
        p.send_async(3).result(1)  # the window is full
    assert not any(f.done() for f in first)
    start = time.monotonic()
    client.close()  # pending sends fail (OutcomeUnknown: they were sent) rather than hang
    assert time.monotonic() - start < 2  # closing wakes the blocked reader thread at once
    assert all(isinstance(f.exception(1), OutcomeUnknown) for f in first)
