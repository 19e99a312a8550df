"""What a server sends, fuzzed, towards streamfw's macrometa client (REST on the fuzz
emulator, WebSockets on a scripted fake GDN).

A bad frame from the server never kills a link: a consumer still receives the good delivery
that follows it (or comes on the next connection), a producer's next send is still confirmed,
and the only errors an application sees are streamfw's typed ``StreamError`` subclasses
(``DecodeError`` for a message it cannot decode). Nothing waits longer than its timeout.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from streamfw_macrometa.emulator import Emulator

from streamfw.client import Client, Stream, connect
from streamfw.errors import DecodeError, StreamError
from tests.fuzz import strategies as fs
from tests.fuzz.conftest import FIGURES, examples
from tests.fuzz.fake_gdn import FakeGdn, fake_gdn

WAIT = 15.0  # s for the good message to come through, reconnects included
LINKS = settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hostile_frames = st.lists(fs.server_out, min_size=1, max_size=3)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGdn]:
    with fake_gdn() as server:
        yield server


@pytest.fixture
def client(fuzz_emulator: Emulator, fake: FakeGdn) -> Iterator[Client]:
    c = connect(
        f"macrometa+http://127.0.0.1:{fuzz_emulator.port}",
        api_key=fuzz_emulator.api_key,
        ws_url=f"ws://127.0.0.1:{fake.port}",
        timeout=2.0,
        reconnect_deadline=WAIT,
    )
    yield c
    c.close()


@pytest.fixture
def stream(client: Client, request: pytest.FixtureRequest) -> Stream:
    return client.stream(f"fzclient{abs(hash(request.node.nodeid)) % 10**8}").create(exist_ok=True)


def test_a_consumer_gets_the_good_message_after_any_bad_frames(
    stream: Stream, fake: FakeGdn
) -> None:
    @LINKS
    @given(frames=hostile_frames)
    def check(frames: list[fs.Frame]) -> None:
        FIGURES["server frames sent to a consumer"] += len(frames)
        fake.script(frames)
        consumer = stream.consumer("sub")
        try:
            end = time.monotonic() + WAIT
            while True:
                left = end - time.monotonic()
                assert left > 0, "the good delivery never came"
                try:
                    m = consumer.receive(left)
                except DecodeError:
                    continue  # a valid frame whose payload cannot be decoded: typed, fine
                assert m is not None, f"nothing in {WAIT} s (and no error)"
                m.ack()
                if (m.id.ledger, m.id.entry, m.value) == (7, 7, "ok"):
                    return
        finally:
            consumer.close()

    check()


def test_a_producer_survives_any_bad_receipt(stream: Stream, fake: FakeGdn) -> None:
    @LINKS
    @given(frames=hostile_frames)
    def check(frames: list[fs.Frame]) -> None:
        FIGURES["server frames sent to a producer"] += len(frames)
        fake.script(frames)
        producer = stream.producer(send_timeout=WAIT)
        try:
            start = time.monotonic()
            with contextlib.suppress(StreamError):  # e.g. a send-error receipt: typed, fine
                producer.send("first", timeout=WAIT)
            assert time.monotonic() - start < WAIT + 2
            assert producer.send("second", timeout=WAIT).ledger == 8
        finally:
            producer.close()

    check()


@pytest.mark.parametrize(
    "junk",
    [b"\xff\xfe", "not json", "[" * 100_000, '{"messageId": 1}', '{"payload": "%%%"}'],
    ids=["not-utf8", "not-json", "deep", "bad-id", "bad-payload"],
)
def test_a_server_sending_only_junk_ends_in_a_typed_error(
    fuzz_emulator: Emulator, fake: FakeGdn, junk: fs.Frame
) -> None:
    """No endless silent reconnect loop: the application hears of it within the deadline."""
    deadline = 2.0
    fake.script([junk] * 3, forever=True)
    with connect(
        f"macrometa+http://127.0.0.1:{fuzz_emulator.port}",
        api_key=fuzz_emulator.api_key,
        ws_url=f"ws://127.0.0.1:{fake.port}",
        timeout=2.0,
        reconnect_deadline=deadline,
    ) as client:
        stream = client.stream("fzjunk").create(exist_ok=True)
        consumer = stream.consumer("sub")
        start = time.monotonic()
        with pytest.raises(StreamError):
            while time.monotonic() - start < 30:
                consumer.receive(1.0)
        assert time.monotonic() - start < deadline + 15
        consumer.close()
