"""Cancellation on the native asyncio macrometa link: a cancelled call took nothing, sent
nothing, and left the link usable (streamfw.aio.spi's rules), over real sockets."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

import streamfw.aio
from streamfw.message import MessageId
from streamfw.testing.contract import unique
from tests.macrometa.conftest import KEY
from tests.macrometa.proxy import Proxy

pytestmark = pytest.mark.anyio


def connect(port: int, **options: Any) -> streamfw.aio.Opening[streamfw.aio.Client]:
    opts = {"api_key": KEY, "timeout": 5.0, "reconnect_deadline": 5.0, **options}
    return streamfw.aio.connect(f"macrometa+http://127.0.0.1:{port}", **opts)


async def test_cancelled_receives_lose_nothing(emu: Any) -> None:
    n = 300
    async with connect(emu.port) as client:
        s = client.stream(unique("aio-cancel-rx"))
        await s.create()
        async with s.consumer("sub") as c, s.producer() as p:
            got: list[int] = []
            cancelled = 0
            rng = random.Random(7)

            async def produce() -> None:
                for i in range(n):
                    await p.send_async(i)
                    if i % 25 == 0:
                        await asyncio.sleep(0.01)
                await p.flush()

            sender = asyncio.create_task(produce())
            loop = asyncio.get_running_loop()
            end = loop.time() + 20
            while len(got) < n and loop.time() < end:
                try:  # cut short at random points, mostly while a receive waits
                    msg = await asyncio.wait_for(c.receive(timeout=5), rng.uniform(0, 0.002))
                except asyncio.TimeoutError:
                    cancelled += 1
                    continue
                assert msg is not None
                got.append(msg.value)
                await msg.ack()
            await sender
            assert cancelled >= 5  # the cancellations really happened
            assert got == list(range(n))  # nothing lost, nothing twice, in order
            assert await c.receive(timeout=0.3) is None


async def test_a_cancelled_receive_leaves_the_message_for_the_next(emu: Any) -> None:
    async with connect(emu.port) as client:
        s = client.stream(unique("aio-cancel-one"))
        await s.create()
        async with s.consumer("sub") as c, s.producer() as p:
            waiting = asyncio.create_task(c.receive())
            await asyncio.sleep(0.1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await p.send("after the cancel")
            msg = await c.receive(timeout=5)
            assert msg is not None and msg.value == "after the cancel"


async def test_cancelled_send_and_flush_on_a_silent_link(emu: Any, proxy: Proxy) -> None:
    # ping_interval + timeout: the silent connection is declared dead after 1.3 s
    async with (
        connect(proxy.port, ping_interval=0.3, timeout=1.0) as client,
        connect(emu.port) as direct,
    ):
        name = unique("aio-cancel-tx")
        s = client.stream(name)
        await s.create()
        async with direct.stream(name).consumer("sub") as c, s.producer(max_pending=2) as p:
            first = await p.send_async("a")
            await first  # the link works
            proxy.blackhole()  # from now on nothing comes back; the link does not know yet
            pending: list[asyncio.Future[MessageId]] = [
                await p.send_async("b"),
                await p.send_async("c"),
            ]
            with pytest.raises(asyncio.TimeoutError):  # the window is full: waits for room
                await asyncio.wait_for(p.send_async("never sent"), 0.2)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(p.flush(), 0.2)
            assert not any(f.done() for f in pending)  # a cancelled flush changed nothing
            # the silence is noticed, the link reconnects and resends what was unconfirmed
            ids = await asyncio.wait_for(asyncio.gather(*pending), 10)
            assert len(set(ids)) == 2
            await p.send("d")
            values = []
            while (msg := await c.receive(timeout=1)) is not None:
                values.append(msg.value)
                await msg.ack()
            assert sorted(set(values)) == ["a", "b", "c", "d"]  # "never sent" never was
