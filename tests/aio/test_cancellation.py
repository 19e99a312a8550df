"""Cancellation and timeouts on streamfw.aio: a cancelled call leaves the client usable and
loses nothing (docs/asyncio.md), on every transport, natively and through the thread adapter."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid

import pytest

import streamfw.aio
from streamfw.errors import Closed, SendTimeout
from tests.aio.conftest import Target

pytestmark = pytest.mark.anyio

WAIT = 5.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def new_stream(client: streamfw.aio.Client) -> streamfw.aio.Stream:
    return await client.stream(unique("cancel")).create()


async def drain(consumer: streamfw.aio.Consumer, settle: float) -> list[object]:
    got = []
    while (msg := await consumer.receive(settle)) is not None:
        got.append(msg.value)
        await msg.ack()
    return got


async def test_cancelled_receive_takes_nothing(client: streamfw.aio.Client, target: Target) -> None:
    stream = await new_stream(client)
    async with stream.consumer("sub") as c, stream.producer() as p:
        waiting = asyncio.ensure_future(c.receive())
        await asyncio.sleep(target.harness.settle)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await p.send("after the cancel")
        msg = await c.receive(WAIT)
        assert msg is not None and msg.value == "after the cancel"
        await msg.ack()
        assert await c.receive(target.harness.settle) is None


async def test_receives_timed_out_while_messages_arrive_lose_none(
    client: streamfw.aio.Client, target: Target
) -> None:
    """Timeouts race deliveries: every message still arrives exactly once."""
    stream = await new_stream(client)
    count = 60
    async with stream.consumer("sub") as c, stream.producer() as p:

        async def produce() -> None:
            for i in range(count):
                await p.send(i)
                if i % 3 == 0:
                    await asyncio.sleep(0.001)

        producing = asyncio.ensure_future(produce())
        got: list[int] = []
        timeouts = 0
        deadline = asyncio.get_running_loop().time() + 30
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            try:
                msg = await asyncio.wait_for(c.receive(), 0.0005 * (1 + len(got) % 4))
            except asyncio.TimeoutError:
                timeouts += 1
                continue
            assert msg is not None
            got.append(msg.value)
            await msg.ack()
        await producing
        assert timeouts > 0  # the race really ran
        assert sorted(got) == list(range(count)), "a message was lost or came twice"
        assert await c.receive(target.harness.settle) is None


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
async def test_asyncio_timeout_around_calls(client: streamfw.aio.Client, target: Target) -> None:
    async with asyncio.timeout(WAIT):
        stream = await new_stream(client)
        consumer = await stream.consumer("sub")
        producer = await stream.producer()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(target.harness.settle):
            await consumer.receive()
    async with asyncio.timeout(WAIT):
        await producer.send("x")
        await producer.flush()
        msg = await consumer.receive()
        assert msg is not None and msg.value == "x"
        await msg.ack()
        assert await stream.backlog() == 0
        await producer.close()
        await consumer.close()
        await stream.delete()


async def test_cancelled_send_sends_once_or_not_at_all(
    client: streamfw.aio.Client, target: Target
) -> None:
    """max_pending=1: the second send waits for room (where the transport has a window) and
    is cancelled there; whatever the cancel hit, the message is stored once or never."""
    stream = await new_stream(client)
    async with stream.consumer("sub") as c, stream.producer(max_pending=1) as p:
        first = await p.send_async("first")
        second = asyncio.ensure_future(p.send("second"))
        await asyncio.sleep(0)
        second.cancel()
        try:
            await second
            sent = True
        except asyncio.CancelledError:
            sent = None  # cancelled waiting for room (not sent) or for the receipt (sent)
        await first
        await p.send("third")  # the producer is still usable
        await p.flush()
        got = await drain(c, target.harness.settle * 3)
    assert got.count("first") == 1 and got.count("third") == 1
    assert got.count("second") <= 1
    if sent:
        assert got == ["first", "second", "third"]


async def test_cancelled_flush_keeps_the_sends(client: streamfw.aio.Client, target: Target) -> None:
    stream = await new_stream(client)
    async with stream.consumer("sub") as c, stream.producer() as p:
        futures = [await p.send_async(i) for i in range(20)]
        flushing = asyncio.ensure_future(p.flush())
        await asyncio.sleep(0)
        flushing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flushing
        await asyncio.wait_for(asyncio.gather(*futures), WAIT)
        await p.flush()
        assert sorted(await drain(c, target.harness.settle)) == list(range(20))


async def test_send_timeout_leaves_the_message_pending(client: streamfw.aio.Client) -> None:
    """A tiny timeout either finds the send confirmed or raises SendTimeout with the pending
    future, which then resolves: the message is not lost."""
    stream = await new_stream(client)
    async with stream.consumer("sub") as c, stream.producer() as p:
        try:
            mid = await p.send("x", timeout=1e-9)
        except SendTimeout as exc:
            assert exc.future is not None
            mid = await asyncio.wait_for(exc.future, WAIT)
        msg = await c.receive(WAIT)
        assert msg is not None and msg.id == mid


async def test_close_wakes_a_waiting_receive_and_ends_iteration(
    client: streamfw.aio.Client,
) -> None:
    stream = await new_stream(client)
    consumer = await stream.consumer("sub")
    waiting = asyncio.ensure_future(consumer._link.receive(None))

    async def iterate() -> list[object]:
        return [m.value async for m in consumer]

    iterating = asyncio.ensure_future(iterate())
    await asyncio.sleep(0.05)
    await consumer.close()
    with pytest.raises(Closed):
        await asyncio.wait_for(waiting, WAIT)
    assert await asyncio.wait_for(iterating, WAIT) == []
    with pytest.raises(Closed):
        await consumer.receive(0)


async def test_a_cancelled_iteration_loses_nothing(
    client: streamfw.aio.Client, target: Target
) -> None:
    stream = await new_stream(client)
    async with stream.consumer("sub") as c, stream.producer() as p:
        seen: list[object] = []

        async def iterate() -> None:
            async for msg in c:
                seen.append(msg.value)
                await msg.ack()

        task = asyncio.ensure_future(iterate())
        await p.send(1)
        while not seen:
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await p.send(2)
        assert await drain(c, target.harness.settle) == [2]
        assert seen == [1]


async def test_cancelled_receive_many_keeps_what_it_took(
    client: streamfw.aio.Client, target: Target
) -> None:
    stream = await new_stream(client)
    async with stream.consumer("sub") as c, stream.producer() as p:
        for i in range(3):
            await p.send(i)
        await p.flush()
        # waits for a 4th message that never comes, holding the three it took
        batch = asyncio.ensure_future(c.receive_many(4))
        await asyncio.sleep(target.harness.settle * 3)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        got = await c.receive_many(4, target.harness.settle)
        assert [m.value for m in got] == [0, 1, 2]
        for m in got:
            await m.ack()
