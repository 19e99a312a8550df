"""A failed send says whether its message may still be stored (issue 8).

Both outcomes over the emulator, with the producer's path blackholed by the proxy
(``half_open``: the client's frames go nowhere and nothing comes back, without a FIN):

* sent but unconfirmed -> ``SendTimeout`` (an ``OutcomeUnknown``): the message is still
  pending and is stored after the reconnect; ``exc.future`` tells.
* no room in the window -> ``NotSent``: never stored, a retry is safe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from streamfw_macrometa import config
from streamfw_macrometa.producer import MacrometaProducer
from streamfw_macrometa.rest import Rest
from streamfw_macrometa.ws import Connector

from streamfw import (
    ConnectionLost,
    MessageId,
    NotSent,
    OperationTimeout,
    OutcomeUnknown,
    SendError,
    SendTimeout,
)
from streamfw.api import ProducerOptions, StreamRef, TransportConfig
from streamfw.client import Client
from streamfw.consumer import Consumer
from streamfw.message import Envelope
from streamfw.testing.contract import unique
from tests.macrometa.proxy import Proxy
from tests.macrometa.scripted import Peer, ScriptedServer, hold


def via(proxy: Proxy) -> str:
    return f"macrometa+http://127.0.0.1:{proxy.port}"


def drain(consumer: Consumer, quiet: float = 1.0) -> list[Any]:
    """Every value received until nothing comes for ``quiet`` s (acked as they come)."""
    values = []
    while (msg := consumer.receive(quiet)) is not None:
        values.append(msg.value)
        msg.ack()
    return values


@pytest.fixture
def blackholed(proxy: Proxy, make_client: Callable[..., Client]) -> Client:
    """A client whose links notice a dead peer after ~2 s (2 x ping_interval + timeout)."""
    return make_client(via(proxy), ping_interval=0.5, timeout=1.0, reconnect_deadline=10.0)


def test_sent_but_unconfirmed_is_outcome_unknown(proxy: Proxy, blackholed: Client) -> None:
    s = blackholed.stream(unique("unknown")).create()
    with s.consumer("sub") as c, s.producer() as p:
        p.send("warm-up")
        proxy.half_open()
        with pytest.raises(SendTimeout, match="may still be stored") as e:
            p.send("once", timeout=0.3)
        assert isinstance(e.value, OutcomeUnknown) and isinstance(e.value, OperationTimeout)
        assert e.value.future is not None
        stored = e.value.future.result(15)  # resent after the reconnect: it was stored
        assert isinstance(stored, MessageId)
        assert sorted(drain(c)) == ["once", "warm-up"]  # a retry would have written it twice


def test_no_room_in_the_window_is_not_sent(proxy: Proxy, blackholed: Client) -> None:
    s = blackholed.stream(unique("notsent")).create()
    with s.consumer("sub") as c, s.producer(max_pending=1, send_timeout=0.3) as p:
        proxy.half_open()
        first = p.send_async("first")  # takes the only slot and goes into the void
        with pytest.raises(NotSent, match="not sent") as e:
            p.send("second")
        assert not isinstance(e.value, OutcomeUnknown)
        assert isinstance(e.value, OperationTimeout)  # existing except clauses still catch it
        first.result(15)
        assert drain(c) == ["first"]  # "second" was never stored: retrying it is safe
        p.send("second, retried", timeout=5)
        assert drain(c) == ["second, retried"]


def test_close_with_unconfirmed_sends(proxy: Proxy, make_client: Callable[..., Client]) -> None:
    """Closing fails written sends with OutcomeUnknown (cause: Closed), never-written ones not."""
    client = make_client(via(proxy), ping_interval=60.0)
    s = client.stream(unique("closing")).create()
    p = s.producer(max_pending=2, send_timeout=0.3)
    proxy.half_open()  # receipts stop coming; nothing notices for a minute
    written = [p.send_async(i) for i in range(2)]
    with pytest.raises(SendTimeout, match="unconfirmed"):
        p.flush(0.3)
    with pytest.raises(NotSent):
        p.send_async(3).result(1)
    assert not written[0].cancel()  # a sent message cannot be withdrawn
    client.close()
    for future in written:
        error = future.exception(1)
        assert isinstance(error, OutcomeUnknown), error
        assert "may be stored" in str(error) and error.__cause__ is not None


def test_never_written_fails_with_the_link_error(
    proxy: Proxy, make_client: Callable[..., Client]
) -> None:
    client = make_client(via(proxy), reconnect_deadline=1.0)
    s = client.stream(unique("unsent")).create()
    p = s.producer()
    link: Any = p._link
    proxy.refusing.set()
    proxy.cut()
    deadline = time.monotonic() + 5
    while link.ws is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # wait until the link knows the socket is gone
    assert link.ws is None
    late = p.send_async("never left")
    error = late.exception(10)
    assert isinstance(error, ConnectionLost) and not isinstance(error, OutcomeUnknown)
    p.close()


def test_send_error_receipts_say_whether_the_message_may_be_stored() -> None:
    """A gateway whose own producer timed out (Pulsar's WebSocket proxy reports the
    TimeoutException in ``send-error``) may still store the message; another refusal not."""
    timeout = "org.apache.pulsar.client.api.PulsarClientException$TimeoutException: late"
    answers = [("send-error:8", timeout), ("send-error:3", "topic is terminated")]

    def script(peer: Peer, n: int) -> None:
        for result, why in answers:
            frame = json.loads(peer.read_text() or "{}")
            peer.send({"result": result, "errorMsg": why, "context": frame.get("context")})
        hold(peer)

    server = ScriptedServer(script)
    settings = config.parse(
        TransportConfig(
            f"macrometa+http://127.0.0.1:{server.port}",
            {"api_key": "acme.k.v", "tenant": "acme", "timeout": 2.0},
        )
    )
    rest = Rest(settings)
    path = "producer/persistent/acme/c8global._system/c8globals.s"
    link = MacrometaProducer(
        Connector(settings, rest, settings.ws_url, path, {}, stream="s"),
        StreamRef("s"),
        ProducerOptions(),
    )
    try:
        timed_out = link.send(Envelope(b"1")).exception(5)
        refused = link.send(Envelope(b"2")).exception(5)
    finally:
        link.close()
        rest.close()
        server.close()
    assert isinstance(timed_out, OutcomeUnknown), timed_out
    assert isinstance(timed_out.__cause__, SendError) and "may still store" in str(timed_out)
    assert isinstance(refused, SendError) and not isinstance(refused, OutcomeUnknown)
