"""The message hooks: plugins see and decorate messages on the way out and in, on every
transport, through pluggy's hook relay; with no such plugin nothing is called."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Generator, Iterator
from typing import Any

import pytest

import streamfw
from streamfw import hookimpl
from streamfw.consumer import Consumer
from streamfw.errors import DecodeError, PluginError
from streamfw.message import Message, MessageId, OutgoingMessage
from streamfw.plugins import PluginSet, installed
from streamfw.producer import Producer
from streamfw.testing import Harness
from streamfw.testing.pytest_plugin import harnesses

WAIT = 5.0


class Recorder:
    """Writes a property on the way out and notes every hook call, in order."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.calls: list[tuple[str, Any]] = []

    @hookimpl(wrapper=True)
    def streamfw_send(
        self, producer: Producer, message: OutgoingMessage
    ) -> Generator[None, Any, Any]:
        message.properties[f"seen-by-{self.tag}"] = ",".join(sorted(message.properties))
        self.calls.append(("before", self.tag))
        future = yield
        future.add_done_callback(lambda f: self.calls.append(("confirmed", f.result())))
        self.calls.append(("after", self.tag))
        return future

    @hookimpl
    def streamfw_after_receive(self, consumer: Consumer, message: Message) -> None:
        self.calls.append(("received", message.id))

    @hookimpl
    def streamfw_on_ack(self, consumer: Consumer, message_id: MessageId) -> None:
        self.calls.append(("acked", message_id))

    @hookimpl
    def streamfw_on_nack(self, consumer: Consumer, message_id: MessageId) -> None:
        self.calls.append(("nacked", message_id))


@pytest.fixture(params=["loopback", "macrometa"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """A fresh broker per test on each transport; the sync API only (whose hooks these are)."""
    harness = harnesses()[request.param].factory()
    try:
        yield harness
    finally:
        harness.close()


@contextlib.contextmanager
def _client(harness: Harness, **plugins: object) -> Iterator[streamfw.Client]:
    """A client of ``harness`` while ``plugins`` are installed (they are looked up by name)."""
    pm = installed().pm
    for plugin_name, plugin in plugins.items():
        pm.register(plugin, name=plugin_name)
    try:
        with harness.client() as client:
            yield client
    finally:
        for plugin_name in plugins:
            pm.unregister(name=plugin_name)


@pytest.fixture
def name() -> str:
    return f"hooks-{uuid.uuid4().hex[:8]}"


def test_wrappers_compose_and_their_properties_reach_the_consumer(
    harness: Harness, name: str
) -> None:
    inner, outer = Recorder("inner"), Recorder("outer")  # pluggy calls the last one first
    with _client(harness, inner=inner, outer=outer) as client:
        stream = client.stream(name).create()
        with stream.consumer("s", initial_position="earliest") as consumer:
            with stream.producer() as producer:
                mid = producer.send({"n": 1}, properties={"app": "x"})
            message = consumer.receive(WAIT)
            assert message is not None and message.value == {"n": 1}
            message.ack()
            assert consumer.receive(harness.settle) is None
    # the outer wrapper ran first, so the inner one saw the property it wrote
    assert message.properties["seen-by-outer"] == "app,streamfw-codec"
    assert message.properties["seen-by-inner"] == "app,seen-by-outer,streamfw-codec"
    assert [c for c in outer.calls if c[0] in ("before", "after")] == [
        ("before", "outer"),
        ("after", "outer"),
    ]
    for recorder in (inner, outer):
        assert ("confirmed", mid) in recorder.calls
        assert ("received", mid) in recorder.calls
        assert ("acked", mid) in recorder.calls


def test_a_nack_and_the_redelivery_are_seen(harness: Harness, name: str) -> None:
    recorder = Recorder("r")
    with _client(harness, r=recorder) as client:
        stream = client.stream(name).create()
        with (
            stream.consumer(
                "s", type="shared", initial_position="earliest", nack_delay=1
            ) as consumer,  # Pulsar counts redeliveries on Shared only
            stream.producer() as producer,
        ):
            mid = producer.send("again")
            first = consumer.receive(WAIT)
            assert first is not None
            first.nack()
            harness.advance(2)
            second = consumer.receive(WAIT)
            assert second is not None and second.redelivery_count == 1
            consumer.ack(second)
    seen = [c for c in recorder.calls if c[0] in ("received", "nacked", "acked")]
    assert seen == [("received", mid), ("nacked", mid), ("received", mid), ("acked", mid)]


def test_an_undecodable_message_is_seen_before_its_error(harness: Harness, name: str) -> None:
    recorder = Recorder("r")
    with _client(harness, r=recorder) as client:
        stream = client.stream(name).create()
        with (
            stream.consumer("s", initial_position="earliest", max_message_size=8) as consumer,
            stream.producer() as producer,
        ):
            mid = producer.send("longer than eight bytes")
            with pytest.raises(DecodeError) as caught:
                consumer.receive(WAIT)
            assert caught.value.undecodable is not None
            caught.value.undecodable.ack()
    assert [c for c in recorder.calls if c[0] in ("received", "acked")] == [
        ("received", mid),
        ("acked", mid),
    ]


class BadProperties:
    def __init__(self, write: dict[str, object]) -> None:
        self.write = write

    @hookimpl(wrapper=True)
    def streamfw_send(
        self, producer: Producer, message: OutgoingMessage
    ) -> Generator[None, Any, Any]:
        message.properties.update(self.write)  # type: ignore[arg-type]
        return (yield)


@pytest.mark.parametrize(
    ("write", "error"),
    [
        ({"n": 1}, "bad properties"),
        ({"streamfw-codec": "raw"}, "reserved property 'streamfw-codec'"),
    ],
)
def test_a_hook_writing_bad_properties_sends_nothing(write: dict[str, object], error: str) -> None:
    url = f"loopback://hooks-{uuid.uuid4().hex}"
    plugins = streamfw.discover(extra={"bad": BadProperties(write)})
    with streamfw.connect(url, plugins=plugins) as client:
        stream = client.stream("s").create()
        with (
            stream.consumer("c"),
            stream.producer() as producer,
            pytest.raises(PluginError, match=error),
        ):
            producer.send({"v": 1})
        assert stream.backlog() == 0


def test_hooks_are_looked_up_once_when_a_producer_or_consumer_opens() -> None:
    """No hook plugin: the producer keeps the link's inline send and messages ack through the
    link itself, so nothing is called per message; a plugin registered later reaches only
    producers opened after it."""
    import streamfw_loopback

    plugins = streamfw.discover(entry_points=False, extra={"loopback": streamfw_loopback})
    with streamfw.connect(f"loopback://hooks-{uuid.uuid4().hex}", plugins=plugins) as client:
        stream = client.stream("s").create()
        with stream.consumer("c") as consumer, stream.producer() as producer:
            assert producer._send_hook is None and producer._send_confirmed is not None
            recorder = Recorder("late")
            plugins.pm.register(recorder, name="late")
            producer.send(1)
            message = consumer.receive(WAIT)
            assert message is not None and message._acker is consumer._link
            message.ack()
            with stream.producer() as newer:
                newer.send(2)
        assert [c[0] for c in recorder.calls] == ["before", "confirmed", "after"]


class Observer:
    """A plain implementation: runs before the send, and returns what it was given."""

    def __init__(self, result: object = None) -> None:
        self.result = result
        self.seen: list[str] = []

    @hookimpl
    def streamfw_send(self, producer: Producer, message: OutgoingMessage) -> object:
        self.seen.append(message.stream)
        return self.result


def test_a_plain_implementation_observes_and_one_returning_junk_is_an_error() -> None:
    import streamfw_loopback

    def only(**plugins: object) -> PluginSet:
        return streamfw.discover(
            entry_points=False, extra={"loopback": streamfw_loopback, **plugins}
        )

    url = f"loopback://hooks-{uuid.uuid4().hex}"
    watcher, junk = Observer(), Observer(result="not a future")
    with streamfw.connect(url, plugins=only(w=watcher)) as client:
        stream = client.stream("s").create()
        with stream.consumer("c") as consumer, stream.producer() as producer:
            producer.send("seen")
            message = consumer.receive(WAIT)
            assert message is not None and message.value == "seen"
    assert watcher.seen == ["s"]
    with streamfw.connect(url, plugins=only(j=junk)) as client:
        stream = client.stream("s").create()
        with stream.producer() as producer, pytest.raises(PluginError, match="returned str"):
            producer.send("lost")
        assert stream.backlog() == 0
