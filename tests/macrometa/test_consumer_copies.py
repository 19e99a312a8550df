"""Copies of one message, and ids that repeat: nothing confirmed is dropped, nothing acked shown.

A restarted server that lost its data numbers new messages from the start again, so their ids
equal ids the consumer acked before (seen with the emulator before its ledger numbers became
unique per start). The scripted server below does exactly that, whatever the emulator does now.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from streamfw_macrometa.wire import encode_message_id

from streamfw.client import Client
from streamfw.message import MessageId
from streamfw.testing.contract import must_receive, unique
from tests.macrometa.apis import consumer_on
from tests.macrometa.proxy import Proxy
from tests.macrometa.scripted import WAIT, Peer, ScriptedServer, delivery, hold

N = 50


def acked_ids(peer: Peer, n: int) -> list[str]:
    """Read ``n`` ack frames from the client; their message ids."""
    out: list[str] = []
    while len(out) < n:
        text = peer.read_text()
        assert text is not None, f"only {len(out)} of {n} acks arrived"
        out.append(json.loads(text)["messageId"])
    return out


def test_a_restarted_server_reusing_ids_loses_nothing() -> None:
    acks: dict[int, list[str]] = {}

    def script(peer: Peer, n: int) -> None:
        if n == 0:  # before the restart: N messages, all acked, then the server dies
            for i in range(N):
                peer.send(delivery(i, f"old-{i}".encode()))
            acks[0] = acked_ids(peer, N)
            peer.close()
        else:  # after it: N new messages under the same ids
            for i in range(N):
                peer.send(delivery(i, f"new-{i}".encode(), publishTime="2026-01-01T00:05:00Z"))
            acks[1] = acked_ids(peer, N)
            hold(peer)

    server = ScriptedServer(script)
    with consumer_on(server) as link:
        got: list[str] = []
        for _ in range(2 * N):
            d = link.receive(WAIT)
            assert d is not None, f"confirmed messages never handed out after {got[-3:]}"
            got.append(d.payload.decode())
            link.ack(d.message_id)
        assert got == [f"old-{i}" for i in range(N)] + [f"new-{i}" for i in range(N)]
        assert link.receive(0.3) is None
    ids = [encode_message_id(MessageId("s", 1, i)) for i in range(N)]
    assert acks == {0: ids, 1: ids}


def test_an_ack_lost_with_the_connection_is_made_again_silently() -> None:
    """The copy that comes back after a drop is the same message: not shown, acked again."""
    again: list[str] = []

    def script(peer: Peer, n: int) -> None:
        if n == 0:
            peer.send(delivery(0, b"once"))
            acked_ids(peer, 1)
            peer.close()  # as if the ack had died with the connection
        else:
            peer.send(delivery(0, b"once", count=1))  # the very same message, again
            again.extend(acked_ids(peer, 1))
            peer.send(delivery(1, b"next"))
            hold(peer)

    server = ScriptedServer(script)
    with consumer_on(server) as link:
        first = link.receive(WAIT)
        assert first is not None and first.payload == b"once"
        link.ack(first.message_id)
        second = link.receive(WAIT)
        assert second is not None and second.payload == b"next"
    assert again == [encode_message_id(MessageId("s", 1, 0))]


def test_nack_and_ack_through_a_copy_held_across_a_reconnect(
    proxy: Proxy, make_client: Callable[..., Client]
) -> None:
    client = make_client(f"macrometa+http://127.0.0.1:{proxy.port}")
    s = client.stream(unique("copies")).create()
    with s.consumer("sub", nack_delay=0.5) as c, s.producer() as p:
        p.send("x")
        p.send("y")
        x, y = must_receive(c), must_receive(c)
        before = proxy.connections
        proxy.cut()  # both come back on the new connection
        deadline = time.monotonic() + WAIT
        while proxy.connections < before + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # and their new copies reach the client before we nack/ack old ones
        x.nack()  # handed back by the cut already: nothing to do, no error
        y.ack()  # acked: its copy from the new connection is acked when it arrives
        m = must_receive(c)
        assert (m.value, m.redelivery_count) == ("x", 0)  # Exclusive: Pulsar counts none
        m.ack()
        assert c.receive(1.0) is None  # y is not shown again, x not after its ack
    deadline = time.monotonic() + WAIT
    while s.backlog() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.backlog() == 0  # both acked on the server
