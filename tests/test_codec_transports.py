"""Hostile payloads through real consumers, on every selected transport (loopback and macrometa
over the emulator): each surfaces as a DecodeError whose message can be acked or nacked, and
the consumer keeps going. The payloads are written as a foreign client would, through the
transport's own producer link, with whatever ``streamfw-codec`` tag it likes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest

import streamfw
from streamfw import Client, DecodeError, EncodeError, Stream
from streamfw.api import ProducerOptions
from streamfw.codec import CODEC_PROPERTY, DEFAULT_MAX_MESSAGE_SIZE
from streamfw.consumer import Consumer
from streamfw.message import Envelope, Message
from streamfw.testing import Harness
from streamfw.testing.contract import WAIT, must_receive, unique

BOMB = zlib.compress(zlib.compress(bytes(64 * 1024 * 1024), 9), 9)  # 64 MiB in ~250 bytes


@pytest.fixture
def client(streamfw_harness: Harness) -> Iterator[Client]:
    with streamfw_harness.client() as c:
        yield c


@pytest.fixture
def stream(client: Client) -> Stream:
    return client.stream(unique("codec")).create()


def write_raw(client: Client, stream: Stream, *items: tuple[bytes, str | None]) -> None:
    """Publish payloads with any tag (None: no tag), bypassing the codec pipeline."""
    link = client.transport.open_producer(stream.ref, ProducerOptions())
    try:
        for payload, tag in items:
            props = {} if tag is None else {CODEC_PROPERTY: tag}
            link.send(Envelope(payload, props)).result(WAIT)
    finally:
        link.close()


def must_fail(consumer: Consumer, match: str) -> Message:
    """The next message, which must raise DecodeError; returns the message it carries."""
    with pytest.raises(DecodeError, match=match) as err:
        consumer.receive(WAIT)
    assert err.value.undecodable is not None and err.value.undecodable.value is None
    return err.value.undecodable


def test_a_decompression_bomb_is_a_decode_error_to_ack(client: Client, stream: Stream) -> None:
    with stream.consumer("sub") as c:
        write_raw(client, stream, (BOMB, "bytes+zlib+zlib"), (b"next", "text"))
        bad = must_fail(c, r"codec 'bytes\+zlib\+zlib', stage 'zlib': inflates to more than")
        assert bad.payload == BOMB
        bad.ack()
        ok = must_receive(c)
        assert ok.value == "next"
        ok.ack()
    assert stream.backlog() == 0  # the bomb was acked like any message


def test_a_decode_error_can_be_nacked_and_comes_back(
    client: Client, stream: Stream, streamfw_harness: Harness
) -> None:
    with stream.consumer("sub", type="shared", nack_delay=30) as c:
        write_raw(client, stream, (BOMB, "bytes+zlib+zlib"))
        must_fail(c, "inflates to more than").nack()
        assert c.receive(streamfw_harness.settle) is None
        streamfw_harness.advance(31)
        again = must_fail(c, "inflates to more than")
        assert again.redelivery_count == 1
        again.ack()
        streamfw_harness.advance(100)
        assert c.receive(streamfw_harness.settle) is None


@pytest.mark.parametrize(
    ("payload", "tag", "match"),
    [
        (b'{"a": 1}', "text+json", r"codec 'text\+json', stage 'json'"),
        (b'{"a": 1}', "zlib+json", r"codec 'zlib\+json', stage 'zlib'"),
        (b"[" * 100_000 + b"]" * 100_000, "json", "codec 'json', stage 'json'"),
        (b"x", "rot13", "unknown here: 'rot13'"),
        (b"x", "bytes" + "+zlib" * 20, r"more than max_codec_stages \(8\)"),
    ],
)
def test_ill_formed_messages_are_decode_errors_and_the_consumer_goes_on(
    client: Client, stream: Stream, payload: bytes, tag: str, match: str
) -> None:
    with stream.consumer("sub") as c:
        write_raw(client, stream, (payload, tag), (b'{"ok": 1}', "json"))
        must_fail(c, match).ack()
        ok = must_receive(c)
        assert ok.value == {"ok": 1}
        ok.ack()


def test_a_consumer_and_a_reader_take_their_own_bound(client: Client, stream: Stream) -> None:
    with (
        stream.consumer("small", max_message_size=1000) as small,
        stream.consumer("default") as default,
    ):
        assert (small.max_message_size, default.max_message_size) == (
            1000,
            DEFAULT_MAX_MESSAGE_SIZE,
        )
        write_raw(client, stream, (b"x" * 1001, "bytes"), (zlib.compress(b"y" * 1001), None))
        must_fail(small, r"payload is 1,001 bytes, over max_message_size \(1,000 bytes\)").ack()
        assert must_receive(default).value == b"x" * 1001
        with stream.reader("earliest", codec="text+zlib", max_message_size=1000) as reader:
            must_fail(reader, "payload is 1,001 bytes")
            must_fail(reader, r"codec 'text\+zlib' \(the message has no streamfw-codec")
        with stream.reader("earliest", codec="text+zlib") as reader:
            assert must_receive(reader).value == b"x" * 1001  # its tag says bytes
            assert must_receive(reader).value == "y" * 1001


def test_a_value_over_the_bound_is_refused_before_anything_is_sent(
    stream: Stream, streamfw_harness: Harness
) -> None:
    too_big = b"x" * (DEFAULT_MAX_MESSAGE_SIZE + 1)
    with stream.consumer("sub") as c, stream.producer() as p:
        with pytest.raises(EncodeError, match=r"wrote 5,242,881 bytes, over max_message_size"):
            p.send(too_big)
        with pytest.raises(EncodeError, match=r"stage 'json': wrote 5,242,888 bytes"):
            p.send_async({"x": "y" * DEFAULT_MAX_MESSAGE_SIZE})
        p.send("small")
        assert must_receive(c).value == "small"
        assert c.receive(streamfw_harness.settle) is None
    assert stream.backlog() == 1  # only "small": nothing of the refused values reached it


def test_the_clients_bound_applies_to_its_producers_and_consumers() -> None:
    with streamfw.connect("loopback://codec-bound", max_message_size=100) as client:
        assert client.max_message_size == 100
        stream = client.stream("s").create()
        with stream.consumer("sub") as c, stream.producer(codec="text+zlib") as p:
            assert c.max_message_size == 100
            with pytest.raises(EncodeError, match=r"stage 'text': wrote 101 bytes.*\(100 bytes"):
                p.send("z" * 101)
            p.send("z" * 100)
            assert must_receive(c).value == "z" * 100
        assert stream.consumer("big", max_message_size=10**9).max_message_size == 10**9


def test_the_same_iterator_goes_on_after_a_decode_error(client: Client, stream: Stream) -> None:
    with stream.consumer("sub") as c:
        write_raw(client, stream, (b"x", "text+json"), (b"after", "text"), (b"{", "json"))
        messages = iter(c)
        with pytest.raises(DecodeError) as err:
            next(messages)
        assert err.value.undecodable is not None and err.value.undecodable.payload == b"x"
        err.value.undecodable.ack()
        ok = next(messages)  # the same iterator takes the next message
        assert ok.value == "after"
        ok.ack()
        with pytest.raises(DecodeError):  # and raises again for the next bad one
            next(messages)
        c.close()
        assert list(messages) == []  # the application's own close ends it


def test_a_for_loop_survives_decode_errors_with_on_decode_error(
    client: Client, stream: Stream
) -> None:
    with stream.consumer("sub", codec="json") as c:
        write_raw(client, stream, (b"1", "json"), (b"\xff", "json"), (b"2", None), (b"3", "nope"))
        write_raw(client, stream, (b"4", "json"))
        bad: list[bytes] = []

        def park(err: DecodeError) -> None:
            assert err.undecodable is not None
            bad.append(err.undecodable.payload)
            err.undecodable.ack()

        good = []
        for message in c.messages(on_decode_error=park):
            good.append(message.value)
            message.ack()
            if message.value == 4:
                break
    assert good == [1, 2, 4]
    assert bad == [b"\xff", b"3"]


def test_decode_error_message_is_a_deprecated_alias(client: Client, stream: Stream) -> None:
    with stream.consumer("sub") as c:
        write_raw(client, stream, (b"x", "text+json"))
        with pytest.raises(DecodeError) as err:
            c.receive(WAIT)
        with pytest.deprecated_call():
            assert err.value.message is err.value.undecodable
