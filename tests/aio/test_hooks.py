"""The message hooks under streamfw.aio: the sync API's plugins see the same calls."""

from __future__ import annotations

import asyncio

import pytest

import streamfw
import streamfw.aio
from tests.aio.conftest import Target
from tests.test_message_hooks import Recorder

pytestmark = pytest.mark.anyio

WAIT = 5.0


async def test_hooks_see_sends_receives_acks_and_nacks(target: Target) -> None:
    recorder = Recorder("r")
    plugins = streamfw.discover(extra={"recorder": recorder})
    options = getattr(target.harness, "options", {})
    url = getattr(target.harness, "url")  # noqa: B009
    async with streamfw.aio.connect(url, plugins=plugins, threads=target.threads, **options) as c:
        stream = await c.stream("hooked").create()
        async with stream.consumer("sub", nack_delay=0) as consumer, stream.producer() as p:
            assert p.transport == consumer.transport == url.split("://")[0]
            mid = await p.send({"n": 1})
            msg = await consumer.receive(WAIT)
            assert msg is not None and msg.id == mid
            assert msg.properties["seen-by-r"] == "streamfw-codec"  # written on the way out
            await msg.nack()
            again = await consumer.receive(WAIT)
            assert again is not None and again.id == mid
            await again.ack()
    await asyncio.sleep(0)  # the confirmation callback runs on the loop
    assert recorder.calls == [
        ("before", "r"),
        ("after", "r"),
        ("confirmed", mid),
        ("received", mid),
        ("nacked", mid),
        ("received", mid),
        ("acked", mid),
    ]


async def test_a_refused_send_fails_the_hooks_future() -> None:
    recorder = Recorder("r")
    plugins = streamfw.discover(extra={"recorder": recorder})
    async with streamfw.aio.connect("loopback://hooks-fail", plugins=plugins) as c:
        stream = await c.stream("gone").create()
        producer = await stream.producer()
        await stream.delete(force=True)
        with pytest.raises(streamfw.StreamDeleted):
            await producer.send("x")
        assert ("before", "r") in recorder.calls
        assert not any(call[0] == "confirmed" for call in recorder.calls)


async def test_a_readers_ack_and_nack_call_no_hook(target: Target) -> None:
    """As for the sync reader (docs/plugins.md): a reader acknowledges nothing."""
    recorder = Recorder("r")
    plugins = streamfw.discover(extra={"recorder": recorder})
    options = getattr(target.harness, "options", {})
    url = getattr(target.harness, "url")  # noqa: B009
    async with streamfw.aio.connect(url, plugins=plugins, threads=target.threads, **options) as c:
        stream = await c.stream("hooked-reader").create()
        async with stream.producer() as p:
            mid = await p.send({"n": 1})
        async with stream.reader("earliest") as reader:
            msg = await reader.receive(WAIT)
            assert msg is not None and msg.id == mid
            await msg.ack()
            await msg.nack()
            await reader.ack(mid)
    assert ("received", mid) in recorder.calls
    assert not [call for call in recorder.calls if call[0] in ("acked", "nacked")]
