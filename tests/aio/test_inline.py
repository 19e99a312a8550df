"""The inline paths of streamfw.aio: a link that answers at once (loopback's
``AsyncInlineProducerLink`` and ``AsyncInlineConsumerLink``) is called without a coroutine of
its own, and the producer and consumer behave exactly as through the awaited methods: the
same errors, the same hooks, fairness to other tasks and cancellation that loses nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import attrs
import pytest

import streamfw
import streamfw.aio
from streamfw import hookimpl
from streamfw.aio.consumer import READY_RECEIVES_PER_YIELD
from streamfw.broker import Limits
from streamfw.errors import BacklogQuotaExceeded, Closed, LocalProtocolError, StreamDeleted
from streamfw.message import MessageId
from tests.aio.fairness import Ticker, drain_beside_a_ticker

pytestmark = pytest.mark.anyio

WAIT = 5.0
MESSAGES = 200
EPOCH = dt.datetime.fromtimestamp(0, dt.timezone.utc)


class ConsumerHooks:
    """Notes the consumer's hook calls; implements no ``streamfw_send``, so sends stay inline."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, MessageId]] = []

    @hookimpl
    def streamfw_after_receive(self, consumer: Any, message: streamfw.aio.Message) -> None:
        self.calls.append(("received", message.id))

    @hookimpl
    def streamfw_on_ack(self, consumer: Any, message_id: MessageId) -> None:
        self.calls.append(("acked", message_id))

    @hookimpl
    def streamfw_on_nack(self, consumer: Any, message_id: MessageId) -> None:
        self.calls.append(("nacked", message_id))


async def awaited_call(*args: object) -> NoReturn:
    raise AssertionError("the link's coroutine was awaited where its inline method answers")


@pytest.fixture
async def stream() -> AsyncIterator[streamfw.aio.Stream]:
    async with streamfw.aio.connect(f"loopback://inline-{uuid.uuid4().hex[:8]}") as client:
        yield await client.stream("inline").create()


async def test_ready_messages_take_no_coroutine_of_the_links(stream: streamfw.aio.Stream) -> None:
    async with stream.consumer("sub", nack_delay=0) as consumer, stream.producer() as producer:
        setattr(producer._link, "send", awaited_call)  # noqa: B010
        for name in ("receive", "ack", "nack"):
            setattr(consumer._link, name, awaited_call)
        first = await producer.send("first")
        msg = await consumer.receive(WAIT)
        assert msg is not None and msg.id == first
        await msg.nack()
        again = await consumer.receive(WAIT)
        assert again is not None and again.id == first
        await again.ack()
        await producer.send("second")
        msg = await consumer.receive(WAIT)
        assert msg is not None and msg.value == "second"
        await consumer.nack(msg)
        again = await consumer.receive(WAIT)
        assert again is not None and again.value == "second"
        await consumer.ack(again)


async def test_send_async_still_returns_the_links_future(stream: streamfw.aio.Stream) -> None:
    async with stream.producer() as producer:
        future = await producer.send_async("x")
        assert isinstance(future, asyncio.Future) and future.done()
        assert isinstance(future.result(), MessageId)


@pytest.mark.parametrize("how", ["receive", "async for", "receive_many"])
async def test_a_consumer_that_always_finds_a_message_lets_another_task_run(
    stream: streamfw.aio.Stream, how: str
) -> None:
    async with stream.consumer("sub") as consumer, stream.producer() as producer:
        for n in range(MESSAGES):
            await producer.send(n)
        values, turns = await drain_beside_a_ticker(consumer, MESSAGES, how)
    assert values == list(range(MESSAGES))  # yielding lost, doubled or reordered nothing
    # One turn (at least) per READY_RECEIVES_PER_YIELD receives; with no yield it had none.
    assert turns >= MESSAGES // READY_RECEIVES_PER_YIELD - 1


async def test_a_receive_cancelled_while_it_yields_takes_nothing(
    stream: streamfw.aio.Stream,
) -> None:
    async with stream.consumer("sub") as consumer, stream.producer() as producer:
        for n in range(READY_RECEIVES_PER_YIELD + 2):
            await producer.send(n)
        for n in range(READY_RECEIVES_PER_YIELD):  # the next receive yields first
            msg = await consumer.receive(WAIT)
            assert msg is not None and msg.value == n
        receiving = asyncio.create_task(consumer.receive(WAIT))
        await asyncio.sleep(0)  # it runs up to its yield
        receiving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receiving
        got = [m.value for m in await consumer.receive_many(10, timeout=0.2)]
    assert got == [READY_RECEIVES_PER_YIELD, READY_RECEIVES_PER_YIELD + 1]


async def test_a_consumer_closed_while_its_receive_yields_raises_closed(
    stream: streamfw.aio.Stream,
) -> None:
    async with stream.consumer("sub") as consumer, stream.producer() as producer:
        for n in range(READY_RECEIVES_PER_YIELD + 1):
            await producer.send(n)
        for _ in range(READY_RECEIVES_PER_YIELD):
            assert await consumer.receive(WAIT) is not None
        receiving = asyncio.create_task(consumer.receive(WAIT))
        await asyncio.sleep(0)  # it runs up to its yield
        await consumer.close()
        with pytest.raises(Closed):
            await receiving


async def test_inline_errors_are_the_awaited_ones(stream: streamfw.aio.Stream) -> None:
    producer = await stream.producer()
    consumer = await stream.consumer("sub")
    mid = await producer.send("x")
    msg = await consumer.receive(WAIT)
    assert msg is not None and msg.id == mid
    with pytest.raises(LocalProtocolError):  # never delivered to this consumer
        await consumer.ack(MessageId(mid.stream, mid.ledger, mid.entry + 5))
    await stream.delete(force=True)
    with pytest.raises(StreamDeleted):
        await producer.send("y")
    failed = await producer.send_async("y")  # failures stay in the future, as the link's
    assert isinstance(failed.exception(), StreamDeleted)
    with pytest.raises(StreamDeleted):
        await consumer.receive(0)
    await consumer.close()
    await producer.close()
    with pytest.raises(Closed):
        await producer.send("z")
    with pytest.raises(Closed):
        await consumer.receive(0)
    with pytest.raises(Closed):
        await msg.ack()
    with pytest.raises(Closed):
        await msg.nack()


async def test_a_refused_inline_send_raises_and_the_producer_goes_on() -> None:
    url = f"loopback://inline-quota-{uuid.uuid4().hex[:8]}"
    async with streamfw.aio.connect(url, limits=Limits(backlog_quota_messages=2)) as client:
        stream = await client.stream("quota").create()
        async with stream.consumer("sub") as consumer, stream.producer() as producer:
            await producer.send(1)
            await producer.send(2)
            with pytest.raises(BacklogQuotaExceeded):
                await producer.send(3)
            refused = await producer.send_async(3)
            assert isinstance(refused.exception(), BacklogQuotaExceeded)
            msg = await consumer.receive(WAIT)
            assert msg is not None and msg.value == 1
            await msg.ack()
            await producer.send(3)  # room again
            values = [m.value for m in await consumer.receive_many(5, timeout=0.2)]
    assert values == [2, 3]


async def test_a_message_without_a_consumer_cannot_be_acked() -> None:
    message = streamfw.aio.Message(
        MessageId("s", 0, 0), "v", b'"v"', {}, None, EPOCH, 0, "s", "sub"
    )
    with pytest.raises(LocalProtocolError):
        await message.ack()
    with pytest.raises(LocalProtocolError):
        await message.nack()


async def test_consumer_hooks_run_on_the_inline_paths() -> None:
    hooks = ConsumerHooks()
    plugins = streamfw.discover(extra={"consumer-hooks": hooks})
    url = f"loopback://inline-hooks-{uuid.uuid4().hex[:8]}"
    async with streamfw.aio.connect(url, plugins=plugins) as client:
        stream = await client.stream("hooked").create()
        async with stream.consumer("sub", nack_delay=0) as consumer, stream.producer() as p:
            assert p._send_confirmed is not None  # no streamfw_send: the send is inline
            assert consumer._receive_nowait is not None
            mid = await p.send("x")
            msg = await consumer.receive(WAIT)
            assert msg is not None
            await msg.nack()
            again = await consumer.receive(WAIT)
            assert again is not None
            await again.ack()
    assert hooks.calls == [("received", mid), ("nacked", mid), ("received", mid), ("acked", mid)]


async def test_a_received_message_is_the_one_its_constructor_builds(
    stream: streamfw.aio.Stream,
) -> None:
    """The consumer fills a message's slots directly (``message_maker``); the result must be
    the very value ``streamfw.aio.Message(...)`` builds from the same parts."""
    async with stream.consumer("sub") as consumer, stream.producer() as producer:
        await producer.send({"n": 1}, properties={"a": "b"}, key="k")
        msg = await consumer.receive(WAIT)
        assert msg is not None
        built = streamfw.aio.Message(
            msg.id,
            msg.value,
            msg.payload,
            dict(msg.properties),
            msg.key,
            msg.publish_time,
            msg.redelivery_count,
            "inline",
            "sub",
            acker=consumer._link,
        )
        assert msg == built and hash(msg) == hash(built) and repr(msg) == repr(built)
        assert attrs.asdict(msg, recurse=False) == attrs.asdict(built, recurse=False)
        assert attrs.evolve(msg, value=2).value == 2
        await msg.ack()  # through the link it was made with
        assert await consumer.receive(0.05) is None


async def test_a_producer_and_a_consumer_task_take_turns_without_waiting(
    stream: streamfw.aio.Stream,
) -> None:
    """On one loop, a consumer that finds nothing gives the producer a turn before it waits:
    the two hand messages over in turns, and the link's waiting receive is never called."""
    async with stream.consumer("sub") as consumer, stream.producer() as producer:
        setattr(consumer._link, "receive", awaited_call)  # noqa: B010

        async def consume() -> list[object]:
            values = []
            for _ in range(MESSAGES):
                msg = await consumer.receive(WAIT)
                assert msg is not None
                values.append(msg.value)
                await msg.ack()
            return values

        async def produce() -> None:
            for n in range(MESSAGES):
                await producer.send(n)

        values, _ = await asyncio.gather(consume(), produce())
    assert values == list(range(MESSAGES))


async def test_a_receive_cancelled_in_its_turn_before_waiting_takes_nothing(
    stream: streamfw.aio.Stream,
) -> None:
    async with stream.consumer("sub") as consumer, stream.producer() as producer:
        receiving = asyncio.create_task(consumer.receive(WAIT))
        await asyncio.sleep(0)  # it found nothing and gave the loop a turn before waiting
        await producer.send("arrived meanwhile")  # ready for it when it resumes...
        receiving.cancel()  # ...but it resumes cancelled
        with pytest.raises(asyncio.CancelledError):
            await receiving
        msg = await consumer.receive(0)
        assert msg is not None and msg.value == "arrived meanwhile"


async def test_a_consumer_closed_in_its_turn_before_waiting_raises_closed(
    stream: streamfw.aio.Stream,
) -> None:
    async with stream.consumer("sub") as consumer:
        receiving = asyncio.create_task(consumer.receive(WAIT))
        await asyncio.sleep(0)  # it found nothing and gave the loop a turn before waiting
        await consumer.close()
        with pytest.raises(Closed):
            await receiving


@pytest.mark.parametrize("timeout", [0, -1.0])
async def test_a_receive_that_may_not_wait_does_not_suspend(
    stream: streamfw.aio.Stream, timeout: float
) -> None:
    async with stream.consumer("sub") as consumer:
        ticker = Ticker()
        task = asyncio.create_task(ticker.run())
        await asyncio.sleep(0)
        turns = ticker.turns
        try:
            assert await consumer.receive(timeout) is None
            assert ticker.turns == turns  # no turn given: receive(0) polls
        finally:
            task.cancel()


async def test_a_receive_that_waits_keeps_its_timeout(stream: streamfw.aio.Stream) -> None:
    loop = asyncio.get_running_loop()
    async with stream.consumer("sub") as consumer:
        started = loop.time()
        assert await consumer.receive(0.2) is None
        # asyncio may fire a timer early by up to its clock resolution
        assert 0.19 <= loop.time() - started < 0.2 + WAIT
