"""WebSocket producer/consumer/reader against the emulator: auth forms, options, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from streamfw_macrometa import wire
from streamfw_macrometa.producer import MacrometaProducer
from streamfw_macrometa.rest import Rest
from streamfw_macrometa.ws import Connector

from streamfw.api import StreamRef
from streamfw.client import Client
from streamfw.errors import (
    AuthError,
    Closed,
    SendError,
    StreamDeleted,
    StreamNotFound,
    SubscriptionBusy,
    Unsupported,
)
from streamfw.message import Envelope
from streamfw.testing.contract import must_receive, unique
from tests.macrometa.apis import Api
from tests.macrometa.conftest import KEY
from tests.macrometa.proxy import Proxy


def upgrades(proxy: Proxy) -> list[tuple[str, dict[str, list[str]], dict[str, str]]]:
    """(path, query, headers) of every WebSocket upgrade that went through the proxy."""
    out = []
    for raw in proxy.captured:
        head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        _, target, _ = head[0].split(" ")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        if headers.get("upgrade", "").lower() == "websocket":
            parts = urlsplit(target)
            out.append((parts.path, parse_qs(parts.query), headers))
    return out


def via(proxy: Proxy) -> str:
    return f"macrometa+http://127.0.0.1:{proxy.port}"


def test_header_auth_by_default(make_client: Callable[..., Client], proxy: Proxy) -> None:
    client = make_client(via(proxy))
    s = client.stream(unique("hdr")).create()
    with s.consumer("c"), s.producer():
        pass
    ups = upgrades(proxy)
    assert len(ups) == 2
    for path, query, headers in ups:
        assert headers["authorization"] == f"apikey {KEY}"
        assert "otp" not in query
        assert path.startswith("/_ws/ws/v2/")
        assert "/persistent/acme/c8global._system/c8globals." in path


def test_otp_auth_fetches_a_fresh_one_per_connect(
    client_api: Api,
    make_api_client: Callable[..., Client],
    proxy: Proxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issued = client_api.record_otps(monkeypatch)
    client = make_api_client(via(proxy), auth="otp")
    s = client.stream(unique("otp")).create()
    with s.consumer("c") as c, s.producer() as p:
        p.send("hello")
        must_receive(c).ack()
        proxy.cut()  # both reconnect, each with a new OTP
        p.send("again")
        assert must_receive(c).value == "again"
    assert len(issued) == 4 and len(set(issued)) == 4  # two connects, two reconnects
    if client_api.name == "threaded":
        # On the wire: the proxy records each connection's first request, and every threaded
        # upgrade opens a connection of its own; aiohttp sends upgrades over the pooled
        # connections its OTP calls opened, so the proxy does not see them.
        ws = upgrades(proxy)
        assert len(ws) == 4
        # each OTP used by exactly one upgrade (two links reconnect concurrently: order varies)
        assert sorted(q["otp"][0] for _, q, _ in ws) == sorted(issued)
        assert all("authorization" not in h for _, _, h in ws)


def test_consumer_options_are_sent(make_client: Callable[..., Client], proxy: Proxy) -> None:
    client = make_client(via(proxy), extensions=True)
    s = client.stream(unique("opts")).create()
    with (
        s.consumer(
            "sub",
            type="shared",
            receiver_queue_size=7,
            name="worker-1",
            ack_timeout=12,
            nack_delay=1.5,
            initial_position="earliest",
        ),
        s.reader("earliest", receiver_queue_size=9, name="r1"),
        s.producer(name="p1"),
    ):
        pass
    (cpath, cq, _), (rpath, rq, _), (ppath, pq, _) = upgrades(proxy)
    assert cpath.endswith("/sub") and "/consumer/" in cpath
    assert {k: v[0] for k, v in cq.items()} == {
        "subscriptionType": "Shared",
        "receiverQueueSize": "7",
        "consumerName": "worker-1",
        "ackTimeoutMillis": "12000",
        "negativeAckRedeliveryDelay": "1500",
        "subscriptionInitialPosition": "Earliest",
    }
    assert "/reader/" in rpath
    assert {k: v[0] for k, v in rq.items()} == {
        "receiverQueueSize": "9",
        "readerName": "r1",
        "messageId": "earliest",
    }
    assert "/producer/" in ppath and pq["producerName"] == ["p1"]


def test_earliest_refused_without_extensions(make_client: Callable[..., Client]) -> None:
    s = make_client().stream(unique("early")).create()
    with pytest.raises(Unsupported, match="initial position"):
        s.consumer("sub", initial_position="earliest")


def test_exclusive_busy_and_missing_stream(make_client: Callable[..., Client]) -> None:
    client = make_client()
    s = client.stream(unique("busy")).create()
    with s.consumer("orders-sub"):
        with pytest.raises(SubscriptionBusy, match="orders-sub") as e:
            s.consumer("orders-sub")
        assert (e.value.subscription, e.value.stream) == ("orders-sub", s.name)
        assert "HTTP 409" in str(e.value)
    with pytest.raises(StreamNotFound, match="nope"):
        client.stream("nope").producer()


def test_handshake_statuses_map_without_the_precheck(make_client: Callable[..., Client]) -> None:
    transport = make_client().transport
    ghost = StreamRef(unique("ghost"))
    with pytest.raises(StreamNotFound, match="HTTP 404"):
        transport._connector("consumer", ghost, {}, "sub").open()  # type: ignore[attr-defined]
    otp_settings = attrs.evolve(transport.settings, auth="otp")  # type: ignore[attr-defined]
    rest = Rest(otp_settings)
    rest.otp = lambda timeout=None: "not-a-real-otp"  # type: ignore[method-assign]
    connector = Connector(
        otp_settings,
        rest,
        otp_settings.ws_url,
        f"consumer/persistent/acme/c8global._system/{wire.topic_name(ghost)}/sub",
        {},
        stream=ghost.name,
        subscription="sub",
    )
    with pytest.raises(AuthError, match="HTTP 401") as e:
        connector.open()
    assert "not-a-real-otp" not in str(e.value) and "S3cr3t" not in str(e.value)
    rest.close()


def test_send_error_receipt_fails_the_future(make_client: Callable[..., Client]) -> None:
    client = make_client()
    s = client.stream(unique("senderr")).create()
    link = client.transport.open_producer(s.ref, __import__("streamfw").ProducerOptions())
    assert isinstance(link, MacrometaProducer)
    with link._idle:  # hold the reader thread off while we inject a refusal
        future = link.send(Envelope(b"x"))
        (context,) = link.protocol.contexts()
        link.on_text(
            json.dumps(
                {"result": "send-error:8", "errorMsg": "broker said no", "context": str(context)}
            )
        )
    with pytest.raises(SendError, match="broker said no"):
        future.result(5)
    assert link.send(Envelope(b"y")).result(5).stream == s.name  # the link goes on
    link.close()
    with pytest.raises(Closed):
        link.send(Envelope(b"z")).result(1)


def test_forced_delete_closes_attached_links(make_client: Callable[..., Client]) -> None:
    client = make_client()
    s = client.stream(unique("del")).create()
    c = s.consumer("sub")
    p = s.producer()
    s.delete(force=True)
    # StreamDeleted, not Closed: the application did not close them
    with pytest.raises(StreamDeleted, match="no longer exists"):
        c.receive(5)
    with pytest.raises(StreamDeleted):
        p.send("late", timeout=5)
    c.close()
    p.close()


def test_reader_from_a_message_id_and_latest(make_client: Callable[..., Client]) -> None:
    client = make_client()
    s = client.stream(unique("rd")).create()
    with s.consumer("keep"), s.producer() as p:  # a durable subscription keeps the log
        ids = [p.send(i) for i in range(3)]
        with s.reader(ids[0]) as r:
            assert [r.receive(5).value for _ in range(2)] == [1, 2]
        with s.reader("latest") as r:
            p.send(3)
            assert r.receive(5).value == 3


def test_server_error_frames_do_not_drop_the_consumer(
    make_client: Callable[..., Client], proxy: Proxy
) -> None:
    client = make_client(via(proxy))
    s = client.stream(unique("errframe")).create()
    with s.consumer("sub") as c, s.producer() as p:
        link = c._link  # type: ignore[attr-defined]
        before = proxy.connections
        link.write(json.dumps({"messageId": "CGMQZA=="}))  # never delivered: error frame back
        link.write(json.dumps({"type": "isEndOfTopic"}))  # {"endOfTopic": false} back
        p.send("still here")
        assert c.receive(5).value == "still here"
        assert proxy.connections == before
        assert link.protocol_errors == 0  # notices, read as such: not unreadable frames


def test_a_bug_in_frame_handling_fails_the_link_instead_of_hanging(
    make_client: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamfw_macrometa.consumer import MacrometaConsumer

    from streamfw.errors import TransportError

    def broken(self: MacrometaConsumer, text: str) -> None:
        raise KeyError("oops")

    client = make_client()
    s = client.stream(unique("bug")).create()
    with s.consumer("sub") as c, s.producer() as p:
        monkeypatch.setattr(MacrometaConsumer, "on_text", broken)
        p.send("boom")
        with pytest.raises(TransportError, match="reader thread failed"):
            c.receive(5)


def test_frames_larger_than_the_read_chunk(make_client: Callable[..., Client]) -> None:
    s = make_client().stream(unique("big")).create()
    big = bytes(range(256)) * 1000  # 256 KB: base64 frames span several 64 KiB reads
    with s.consumer("sub") as c, s.producer() as p:
        for n in range(3):
            p.send(big[n:])
        assert [c.receive(5).value for _ in range(3)] == [big, big[1:], big[2:]]


def test_client_close_wakes_a_blocked_receive(make_client: Callable[..., Client]) -> None:
    import threading

    client = make_client()
    s = client.stream(unique("wake")).create()
    consumer = s.consumer("sub")
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            consumer.receive(None)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    client.close()
    t.join(5)
    assert not t.is_alive() and isinstance(outcome[0], Closed)


def test_a_busy_subscription_is_retried_for_busy_deadline(
    make_client: Callable[..., Client], proxy: Proxy
) -> None:
    """The server holds the dead session longer than reconnect_deadline: busy_deadline wins."""
    import time

    client = make_client(via(proxy), reconnect_deadline=0.5, busy_deadline=8.0)
    s = client.stream(unique("halfopen")).create()
    with s.consumer("sub") as c:
        proxy.client_side_cut(server_lag=1.2)  # the server lets go of the old session at 1.2 s
        start = time.monotonic()
        with s.producer() as p:
            p.send("after the lag")
        assert c.receive(10).value == "after the lag"
        assert time.monotonic() - start >= 1.1  # refused (409) until the server let go


@pytest.mark.parametrize("option", ["busy_deadline", "max_frame_size"])
def test_new_limits_are_checked_options(make_client: Callable[..., Client], option: str) -> None:
    from streamfw.errors import ConfigError

    with pytest.raises(ConfigError, match=option):
        make_client(**{option: 0})
