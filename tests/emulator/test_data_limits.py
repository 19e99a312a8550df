"""Emulator limits (issue 8): numeric path parameters, backlog quota, stream/subscription caps."""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
from collections.abc import Iterator

import pytest
from streamfw_macrometa.emulator import Emulator, command

import streamfw
from streamfw import BacklogQuotaExceeded, InUse, LimitExceeded
from streamfw.broker import MAX_SECONDS, Limits
from tests.emulator.helpers import Api, ack, close_code, recv, refused, send

HUGE = "9" * 400


@pytest.mark.parametrize(
    "tail",
    [f"/ttl/{HUGE}", "/ttl/²", f"/ttl/{MAX_SECONDS + 1}", "/ttl/-1", "/ttl/1.5", "/ttl/١٢"],
)
def test_bad_ttl_is_a_400_and_changes_nothing(api: Api, tail: str) -> None:
    before = api.streams("GET", "/ttl").json()["result"]
    r = api.streams("POST", tail)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] is True and body["code"] == 400 and "seconds" in body["errorMessage"]
    assert api.streams("GET", "/ttl").json()["result"] == before


@pytest.mark.parametrize("seconds", [HUGE, "²", str(MAX_SECONDS + 1), "1e3"])
def test_bad_expiry_is_a_400(api: Api, topic: str, seconds: str) -> None:
    r = api.streams("POST", f"/{topic}/expiry/{seconds}")
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 400


def test_timers_keep_running_after_bad_numbers(api: Api, topic: str, name: str) -> None:
    """Before: ttl/<400 digits> was stored and every tick raised OverflowError, nacks stalled."""
    api.streams("POST", f"/ttl/{HUGE}")
    consumer = api.consumer(topic, name, negativeAckRedeliveryDelay="100")
    producer = api.producer(topic)
    send(producer, b"again")
    first = recv(consumer)
    consumer.send(json.dumps({"type": "negativeAcknowledge", "messageId": first["messageId"]}))
    second = recv(consumer)
    assert second["messageId"] == first["messageId"] and second["redeliveryCount"] == 0
    ack(consumer, second)
    consumer.close()
    producer.close()


@pytest.mark.parametrize(
    "query",
    [
        {"negativeAckRedeliveryDelay": "nan"},
        {"ackTimeoutMillis": "inf"},
        {"receiverQueueSize": "1e400"},
    ],
)
def test_non_finite_consumer_numbers_are_refused(
    api: Api, topic: str, name: str, query: dict[str, str]
) -> None:
    assert refused(api, api.ws_url("consumer", topic, name, **query)).status_code == 400


# ---------------------------------------------------------------------------- quotas


@pytest.fixture
def small() -> Iterator[Emulator]:
    """An emulator whose broker holds 3 messages a stream, 2 streams, 1 subscription each."""
    limits = Limits(max_streams=2, max_subscriptions=1, backlog_quota_messages=3)
    with Emulator.start(host="127.0.0.1", port=0, limits=limits) as emu:
        yield emu


def test_a_full_backlog_gets_pulsars_send_error_receipt(small: Emulator) -> None:
    api = Api(small)
    topic = api.create("q")
    consumer = api.consumer(topic, "sub", receiverQueueSize="1")
    producer = api.producer(topic)
    for _ in range(3):
        assert send(producer, b"x")["result"] == "ok"
    receipt = send(producer, b"over", context="c1")
    assert receipt["result"] == "send-error:8" and receipt["context"] == "c1"
    assert "backlog quota exceeded" in receipt["errorMsg"]
    r = api.streams("POST", f"/{topic}/publish", data=b"rest")
    assert r.status_code == 429 and "backlog quota" in r.json()["errorMessage"]
    ack(consumer, recv(consumer))  # the consumer catches up: publishing works again
    deadline = time.monotonic() + 3
    while (receipt := send(producer, b"room"))["result"] != "ok":
        assert time.monotonic() < deadline, receipt
        time.sleep(0.02)
    consumer.close()
    producer.close()


def test_stream_and_subscription_caps_answer_412(small: Emulator) -> None:
    api = Api(small)
    topic = api.create("a")
    api.create("b")
    r = api.streams("POST", "/c?global=true")
    assert r.status_code == 412 and "max_streams" in r.json()["errorMessage"]
    api.consumer(topic, "one").close()
    error = refused(api, api.ws_url("consumer", topic, "two"))
    assert error.status_code == 412


@pytest.mark.parametrize("transport", ["loopback", "macrometa"])
def test_the_caps_are_the_same_error_on_every_transport(small: Emulator, transport: str) -> None:
    if transport == "macrometa":
        url = f"macrometa+http://127.0.0.1:{small.port}"
        client = streamfw.connect(url, api_key=small.api_key, timeout=5.0)
    else:
        client = streamfw.connect(
            "loopback://caps-test", limits=Limits(max_streams=2, max_subscriptions=1)
        )
    with client:
        first = client.stream("capped-a").create()
        client.stream("capped-b").create()
        with pytest.raises(LimitExceeded, match="max_streams"):
            client.stream("capped-c").create()
        with first.consumer("one"), pytest.raises(LimitExceeded, match="max_subscriptions"):
            first.consumer("two")
        with first.consumer("one"), pytest.raises(InUse):
            first.delete()  # the other 412: a delete refused while in use
        first.delete(force=True)
        client.stream("capped-b").delete(force=True)


@pytest.mark.parametrize("transport", ["loopback", "macrometa"])
def test_the_client_gets_the_same_quota_error_on_every_transport(
    small: Emulator, transport: str
) -> None:
    if transport == "macrometa":
        client = streamfw.connect(
            f"macrometa+http://127.0.0.1:{small.port}", api_key=small.api_key, timeout=5.0
        )
    else:
        client = streamfw.connect("loopback://quota-test", limits=Limits(backlog_quota_messages=3))
    with client:
        stream = client.stream("quota").create(exist_ok=True)
        with stream.consumer("sub") as consumer, stream.producer() as producer:
            for _ in range(3):
                producer.send(b"x", timeout=5)
            with pytest.raises(BacklogQuotaExceeded, match="backlog quota exceeded"):
                producer.send(b"over", timeout=5)
            first = consumer.receive(timeout=5)
            assert first is not None
            first.ack()  # makes room: the same producer's retry is stored
            deadline = time.monotonic() + 5
            while True:
                try:
                    producer.send(b"retried", timeout=5)
                    break
                except BacklogQuotaExceeded:  # the ack may not have reached the broker yet
                    assert time.monotonic() < deadline, "the ack never made room"
                    time.sleep(0.05)
        stream.delete(force=True)


def test_the_command_line_sets_the_limits() -> None:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--backlog-quota-messages", "2", "--max-streams", "1"])
    seen: list[Limits] = []

    def ready(emu: Emulator) -> None:
        assert emu._state is not None
        seen.append(emu._state.fabrics["_system"].broker.limits)
        stop.set()

    stop = threading.Event()
    assert command.run(args, stop=stop, ready=ready, out=io.StringIO()) == 0
    assert seen == [Limits(max_streams=1, backlog_quota_messages=2)]
    bad = parser.parse_args(["--port", "0", "--max-subscriptions", "0"])
    assert command.run(bad, stop=threading.Event(), out=io.StringIO()) == 2


def test_the_frame_limit_is_an_option_for_sockets_and_rest_bodies() -> None:
    with Emulator.start(host="127.0.0.1", port=0, max_frame_size=4096) as emu:
        api = Api(emu)
        topic = api.create(f"frames-{time.monotonic_ns()}")
        producer = api.producer(topic)
        assert send(producer, b"x" * 1000)["result"] == "ok"  # 1,336 base64 bytes: fits
        producer.send(json.dumps({"payload": "eA==" * 1100}))  # 4,400+ bytes: too large
        assert close_code(producer) == 1009
        assert api.streams("POST", f"/{topic}/publish", data=b"y" * 4000).status_code == 200
        assert api.streams("POST", f"/{topic}/publish", data=b"y" * 5000).status_code == 413
    with pytest.raises(ValueError, match="max_frame_size"):
        Emulator.start(host="127.0.0.1", port=0, max_frame_size=10)


def test_the_command_line_sets_the_frame_limit() -> None:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--max-frame-size", "65536"])
    seen: list[int] = []
    out = io.StringIO()

    def ready(emu: Emulator) -> None:
        seen.append(emu.max_frame_size)
        stop.set()

    stop = threading.Event()
    assert command.run(args, stop=stop, ready=ready, out=out) == 0
    assert seen == [65536]
    assert "frames 64 KiB" in out.getvalue()
