"""Every kind of WebSocket frame and upgrade, sent to the emulator over real sockets.

The documented answers (docs/emulator.md, "Frames"): a producer frame always gets a receipt
and the socket stays open; a bad consumer or reader frame gets an error frame and the socket
stays open; a frame over the size limit closes that socket with 1009; a text frame that is
not UTF-8 breaks RFC 6455 itself and closes that socket with 1007. Anything else (a closed
socket, a 5xx on the upgrade, an ERROR in the emulator's log, a disturbed bystander) fails.
"""

from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
import pytest
import websocket
from hypothesis import example, given
from streamfw_macrometa.wire import encode_message_id

from streamfw.message import MessageId
from tests.emulator.helpers import Api, close_code, payload, recv, send
from tests.fuzz import strategies as fs
from tests.fuzz.conftest import FIGURES, over_sockets

pytestmark = pytest.mark.usefixtures("clean")


@pytest.fixture
def topic(api: Api, request: pytest.FixtureRequest) -> str:
    return api.create(f"fz{abs(hash(request.node.nodeid)) % 10**8}x{id(request)}")


def answer(ws: websocket.WebSocket) -> dict[str, Any]:
    """The next frame; a socket the emulator closed instead is counted and fails the test."""
    try:
        return recv(ws)
    except (websocket.WebSocketConnectionClosedException, ConnectionError, ValueError) as exc:
        FIGURES["sockets closed unexpectedly"] += 1
        raise AssertionError(f"the emulator closed the socket: {exc!r}") from exc


def _send(ws: websocket.WebSocket, frame: fs.Frame) -> None:
    if isinstance(frame, bytes):
        ws.send(frame, opcode=websocket.ABNF.OPCODE_BINARY)  # a frame type the API never uses
    else:
        ws.send(frame)


def _parsed(frame: fs.Frame) -> Any:
    try:
        return json.loads(frame)
    except (ValueError, RecursionError):
        return None


class Reopen:
    """One socket reused across examples; ``fresh()`` replaces it after an expected close."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self.ws: websocket.WebSocket = make()

    def fresh(self) -> websocket.WebSocket:
        self.ws.close()
        self.ws = self.make()
        return self.ws


def test_a_producer_gets_a_receipt_for_any_frame_and_stays_open(api: Api, topic: str) -> None:
    """And what it accepts (``ok``) reaches a consumer, payload and properties intact."""
    producer = api.producer(topic)
    consumer = api.consumer(topic, "check", subscriptionType="Shared")

    @over_sockets(120)
    @given(frame=fs.producer_in)
    @example(frame='{"payload":"aGk=","properties":{"k":"\\ud800"}}')  # FINDINGS.md 6
    @example(frame='{"payload":"aGk=","context":"\\udfff"}')
    @example(frame='{"payload":"aGk=","key":"\\ud800"}')
    def check(frame: fs.Frame) -> None:
        FIGURES["producer frames sent"] += 1
        _send(producer, frame)
        receipt = answer(producer)
        assert receipt["result"] == "ok" or receipt["result"].startswith("send-error:"), receipt
        if receipt["result"] != "ok":
            return
        sent = _parsed(frame.decode("utf-8") if isinstance(frame, bytes) else frame)
        try:
            got = recv(consumer, 5)
        except websocket.WebSocketTimeoutException as exc:
            raise AssertionError(f"accepted {receipt} but never delivered") from exc
        assert got["messageId"] == receipt["messageId"], got
        assert got["payload"] == sent["payload"], got
        assert got.get("properties", {}) == (sent.get("properties") or {}), got
        consumer.send(json.dumps({"messageId": got["messageId"]}))

    try:
        check()
        assert send(producer, b"next")["result"] == "ok"
        assert payload(recv(consumer, 5)) == b"next"
    finally:
        producer.close()
        consumer.close()


def _probe(ws: websocket.WebSocket, n: int) -> None:
    """Ack an id never delivered and read up to its error frame: every frame on the way must
    be an error frame or an end-of-topic answer, and the socket must still be there."""
    probe = encode_message_id(MessageId("x", 10**9, n))
    ws.send(json.dumps({"messageId": probe}))
    for _ in range(5):
        got = answer(ws)
        assert "error" in got or "endOfTopic" in got, got
        if "error" in got:
            assert isinstance(got["code"], int) and got["error"], got
        if got.get("messageId") == probe:
            return
    raise AssertionError("no answer to the probe after 5 frames")


def _harmless(frame: fs.Frame) -> bool:
    """Leave out ``unsubscribe``: closing the socket is its documented effect."""
    value = _parsed(frame)
    return not (isinstance(value, dict) and value.get("type") == "unsubscribe")


@pytest.mark.parametrize("kind", ["consumer", "reader"])
def test_a_consumer_or_reader_answers_any_frame_and_stays_open(
    api: Api, topic: str, kind: str
) -> None:
    make = (
        (lambda: api.consumer(topic, "fuzz", subscriptionType="Shared"))
        if kind == "consumer"
        else (lambda: api.reader(topic))
    )
    socket = Reopen(make)
    count = iter(range(10**9))

    @over_sockets(150)
    @given(frame=fs.consumer_in.filter(_harmless))
    def check(frame: fs.Frame) -> None:
        FIGURES[f"{kind} frames sent"] += 1
        _send(socket.ws, frame)
        _probe(socket.ws, next(count))

    try:
        check()
        if kind == "reader":
            socket.fresh()  # a reader starts at the latest message
        producer = api.producer(topic)  # and it still delivers
        send(producer, b"still")
        producer.close()
        assert payload(recv(socket.ws, 10)) == b"still"
    finally:
        socket.ws.close()


@over_sockets(4)
@given(size=fs.oversized)
def test_an_oversized_frame_closes_only_its_socket(api: Api, topic: str, size: int) -> None:
    """Closed with 1009; the client may see a reset instead (-1): the server closed while
    the rest of the frame was still coming, and the kernel answers unread data with RST."""
    producer = api.producer(topic)
    FIGURES["oversized frames sent"] += 1
    try:
        producer.send(json.dumps({"payload": "A" * size}))
        assert close_code(producer) in (1009, -1)
    finally:
        producer.close()
    again = api.producer(topic)
    assert send(again, b"after")["result"] == "ok"
    again.close()


@over_sockets(10)
@given(frame=fs.not_utf8)
def test_a_text_frame_that_is_not_utf8_closes_only_its_socket_with_1007(
    api: Api, topic: str, frame: bytes
) -> None:
    producer = api.producer(topic)
    FIGURES["invalid UTF-8 text frames sent"] += 1
    try:
        producer.send(frame, opcode=websocket.ABNF.OPCODE_TEXT)
        assert close_code(producer) == 1007
    finally:
        producer.close()


QUERY_NAMES = [*fs.CONSUMER_QUERY_NAMES, "messageId", "readerName", "otp"]


@over_sockets(80)
@given(
    kind=st.sampled_from(["consumer", "reader", "producer"]),
    query=st.dictionaries(
        st.sampled_from(QUERY_NAMES),
        st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
        | fs.RAW_VALUES
        | fs.hostile_ids,
        max_size=4,
    ),
    sub=fs.segments,
)
def test_an_upgrade_with_any_parameters_is_answered_101_or_4xx(
    api: Api, topic: str, kind: str, query: dict[str, str], sub: str
) -> None:
    FIGURES["WebSocket upgrades tried"] += 1
    url = api.ws_url(kind, topic, sub if kind == "consumer" else None, **query)
    try:
        api.connect(url).close()
    except websocket.WebSocketBadStatusException as exc:
        assert 400 <= exc.status_code < 500, f"{url}: {exc.status_code} {exc}"
