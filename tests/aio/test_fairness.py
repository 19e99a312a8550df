"""A loop of sends the link confirms inline (loopback) leaves other tasks their turn."""

from __future__ import annotations

import asyncio

import pytest

import streamfw
import streamfw.aio
from streamfw.aio.producer import INLINE_SENDS_PER_YIELD
from tests.aio.fairness import Ticker
from tests.test_message_hooks import Recorder

pytestmark = pytest.mark.anyio

SENDS = 200


@pytest.mark.parametrize("hooked", [False, True], ids=["plain", "hooked"])
@pytest.mark.parametrize("call", ["send", "send_async"])
async def test_a_tight_send_loop_lets_another_task_run(call: str, hooked: bool) -> None:
    extra: dict[str, object] = {"recorder": Recorder("r")} if hooked else {}
    plugins = streamfw.discover(extra=extra)
    async with streamfw.aio.connect("loopback://", plugins=plugins) as client:
        stream = await client.stream("fair").create()
        async with stream.producer() as producer:
            assert (producer._send_hook is not None) is hooked
            ticker = Ticker()
            task = asyncio.create_task(ticker.run())
            try:
                for n in range(SENDS):
                    if call == "send":
                        await producer.send(n)
                    else:
                        future = await producer.send_async(n)
                        assert future.done()  # confirmed inline: this loop never waited
                turns = ticker.turns  # before anything below suspends this task
            finally:
                task.cancel()
        async with stream.reader("earliest") as reader:  # yielding lost or doubled nothing
            values = [m.value for m in await reader.receive_many(SENDS + 1, timeout=0.5)]
    assert values == list(range(SENDS))
    # One turn (at least) per INLINE_SENDS_PER_YIELD sends; with no yield it had none.
    assert turns >= max(1, SENDS // INLINE_SENDS_PER_YIELD - 1)


async def test_a_send_cancelled_while_it_yields_sends_nothing() -> None:
    async with streamfw.aio.connect("loopback://") as client:
        stream = await client.stream("fair-cancel").create()
        async with stream.producer() as producer:
            for n in range(INLINE_SENDS_PER_YIELD):  # the next send yields first
                await producer.send(n)
            sending = asyncio.create_task(producer.send("cancelled"))
            await asyncio.sleep(0)  # it runs up to its yield
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            await producer.send("after")
        async with stream.reader("earliest") as reader:
            values = [m.value for m in await reader.receive_many(SENDS, timeout=0.5)]
    assert values == [*range(INLINE_SENDS_PER_YIELD), "after"]
