"""Consumer.receive_many (batch receive) and pull mode through the public API, on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import streamfw
from streamfw.client import Client, Stream
from streamfw.message import Envelope


@pytest.fixture
def client() -> Iterator[Client]:
    with streamfw.connect(f"loopback://batch-{time.monotonic_ns()}") as c:
        yield c


@pytest.fixture
def stream(client: Client) -> Stream:
    return client.stream("jobs").create()


def test_a_batch_returns_as_soon_as_it_is_full(stream: Stream) -> None:
    with stream.consumer("w") as consumer, stream.producer() as producer:
        for i in range(5):
            producer.send(i)
        started = time.monotonic()
        batch = consumer.receive_many(3, timeout=30)
        assert [m.value for m in batch] == [0, 1, 2]
        assert time.monotonic() - started < 10  # did not wait for the timeout
        assert [m.value for m in consumer.receive_many(10, timeout=0.05)] == [3, 4]
        assert consumer.receive_many(1, timeout=0.05) == []


def test_pull_mode_holds_only_what_it_asked_for(stream: Stream) -> None:
    puller = stream.consumer("w", type="shared", name="puller", pull_mode=True)
    other = stream.consumer("w", type="shared", name="other", receiver_queue_size=1)
    with stream.producer() as producer:
        for i in range(6):
            producer.send(i)
    assert len(puller.receive_many(2, timeout=1)) == 2
    held = {c["name"]: c["unacked"] for c in stream.stats()["subscriptions"]["w"]["consumers"]}
    assert held == {"puller": 2, "other": 1}  # three wait: nothing sent to the puller ahead
    puller.close()
    other.close()


def test_an_undecodable_message_ends_a_batch_and_is_raised_next(
    client: Client, stream: Stream
) -> None:
    with stream.consumer("w") as consumer, stream.producer() as producer:
        producer.send("fine")
        raw = client._transport().open_producer(stream.ref, streamfw.ProducerOptions())
        raw.send(Envelope(b"\xff", {"streamfw-codec": "json"})).result(5)
        raw.close()
        producer.send("after")
        assert [m.value for m in consumer.receive_many(3, timeout=1)] == ["fine"]
        with pytest.raises(streamfw.DecodeError) as err:
            consumer.receive_many(3, timeout=1)
        assert err.value.undecodable is not None
        err.value.undecodable.ack()
        assert [m.value for m in consumer.receive_many(3, timeout=0.2)] == ["after"]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3"])
def test_max_messages_is_checked(stream: Stream, bad: object) -> None:
    with stream.consumer("w") as consumer, pytest.raises(streamfw.ConfigError, match="max_mes"):
        consumer.receive_many(bad, timeout=0)  # type: ignore[arg-type]
