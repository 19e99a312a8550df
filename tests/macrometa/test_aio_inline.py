"""The asyncio macrometa link answers at once while deliveries are queued
(``AsyncInlineConsumerLink``): the consumer takes them without a coroutine of the link's,
yields to the loop every ``READY_RECEIVES_PER_YIELD`` of them, loses nothing when cancelled
there, and acks through ``ack_nowait`` by the protocol's rules, the awaited ack's."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import pytest
from streamfw_macrometa.aio.consumer import AsyncMacrometaConsumer
from streamfw_macrometa.wire import encode_message_id

import streamfw
import streamfw.aio
from streamfw import hookimpl
from streamfw.aio.consumer import READY_RECEIVES_PER_YIELD
from streamfw.message import MessageId
from streamfw.testing.contract import unique
from tests.aio.fairness import drain_beside_a_ticker
from tests.macrometa.apis import Api, ConsumerLink
from tests.macrometa.conftest import KEY
from tests.macrometa.scripted import WAIT, Peer, ScriptedServer, delivery, hold

QUEUED = 100


def connect(port: int, **options: Any) -> streamfw.aio.Opening[streamfw.aio.Client]:
    opts = {"api_key": KEY, "timeout": 5.0, "reconnect_deadline": 5.0, **options}
    return streamfw.aio.connect(f"macrometa+http://127.0.0.1:{port}", **opts)


async def awaited_call(*args: object) -> NoReturn:
    raise AssertionError("the link's coroutine was awaited where its inline method answers")


def link_of(consumer: streamfw.aio.Consumer) -> AsyncMacrometaConsumer:
    link = consumer._link
    assert isinstance(link, AsyncMacrometaConsumer)
    return link


async def queued(consumer: streamfw.aio.Consumer, n: int) -> AsyncMacrometaConsumer:
    """Wait until ``n`` deliveries are queued at the consumer's link; the link."""
    link = link_of(consumer)
    loop = asyncio.get_running_loop()
    end = loop.time() + WAIT
    while len(link._arrivals) < n:
        assert loop.time() < end, f"{len(link._arrivals)} of {n} deliveries arrived"
        await asyncio.sleep(0.01)
    return link


@pytest.fixture
async def stream(emu: Any) -> AsyncIterator[streamfw.aio.Stream]:
    async with connect(emu.port) as client:
        s = client.stream(unique("aio-inline"))
        await s.create()
        yield s


@pytest.mark.anyio
@pytest.mark.parametrize("pull", [False, True], ids=["push", "pull"])
async def test_queued_deliveries_take_no_coroutine_of_the_links(
    stream: streamfw.aio.Stream, pull: bool
) -> None:
    async with (
        stream.consumer("sub", nack_delay=0, pull_mode=pull) as consumer,
        stream.producer() as producer,
    ):
        for n in range(QUEUED):
            await producer.send_async(n)
        await producer.flush()
        if pull:
            await link_of(consumer).request(QUEUED)
        link = await queued(consumer, QUEUED)
        awaited = {name: getattr(link, name) for name in ("receive", "ack", "nack")}
        for name in awaited:
            setattr(link, name, awaited_call)
        values = []
        for n in range(QUEUED):
            msg = await consumer.receive(WAIT)
            assert msg is not None
            values.append(msg.value)
            if n == 0:
                await msg.nack()
            elif n % 2:
                await msg.ack()
            else:
                await consumer.ack(msg)
        assert values == list(range(QUEUED))
        for name, method in awaited.items():
            setattr(link, name, method)
        again = await consumer.receive(WAIT)  # the nack frame went out: it comes back
        assert again is not None and again.value == 0
        await again.ack()
        assert await consumer.receive(0.3) is None  # every ack frame went out too
    await _settled(stream)


async def _settled(stream: streamfw.aio.Stream) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + WAIT
    while await stream.backlog() and loop.time() < end:
        await asyncio.sleep(0.05)
    assert await stream.backlog() == 0


@pytest.mark.anyio
async def test_a_reader_takes_queued_deliveries_inline(stream: streamfw.aio.Stream) -> None:
    async with stream.producer() as producer:
        for n in range(QUEUED):
            await producer.send_async(n)
    async with stream.reader("earliest") as reader:
        link = await queued(reader, QUEUED)
        setattr(link, "receive", awaited_call)  # noqa: B010
        values = [m.value for m in await reader.receive_many(QUEUED, timeout=WAIT)]
    assert values == list(range(QUEUED))


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["receive", "async for", "receive_many"])
async def test_a_consumer_that_always_finds_a_delivery_queued_lets_another_task_run(
    stream: streamfw.aio.Stream, how: str
) -> None:
    async with stream.consumer("sub") as consumer, stream.producer() as producer:
        for n in range(QUEUED):
            await producer.send_async(n)
        await producer.flush()
        await queued(consumer, QUEUED)
        values, turns = await drain_beside_a_ticker(consumer, QUEUED, how)
    assert values == list(range(QUEUED))
    # One turn (at least) per READY_RECEIVES_PER_YIELD receives; with no yield it had none.
    assert turns >= QUEUED // READY_RECEIVES_PER_YIELD - 1


@pytest.mark.anyio
async def test_a_receive_cancelled_while_it_yields_takes_nothing(
    stream: streamfw.aio.Stream,
) -> None:
    total = READY_RECEIVES_PER_YIELD + 3
    async with stream.consumer("sub") as consumer, stream.producer() as producer:
        for n in range(total):
            await producer.send_async(n)
        await producer.flush()
        await queued(consumer, total)
        for n in range(READY_RECEIVES_PER_YIELD):  # the next receive yields first
            msg = await consumer.receive(WAIT)
            assert msg is not None and msg.value == n
            await msg.ack()
        receiving = asyncio.create_task(consumer.receive(WAIT))
        await asyncio.sleep(0)  # it runs up to its yield
        receiving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receiving
        rest = await consumer.receive_many(10, timeout=0.3)
        assert [m.value for m in rest] == list(range(READY_RECEIVES_PER_YIELD, total))
        for m in rest:
            await m.ack()
    await _settled(stream)


class ConsumerHooks:
    """Notes the consumer's hook calls."""

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


@pytest.mark.anyio
async def test_consumer_hooks_run_on_the_inline_paths(emu: Any) -> None:
    hooks = ConsumerHooks()
    plugins = streamfw.discover(extra={"consumer-hooks": hooks})
    async with connect(emu.port, plugins=plugins) as client:
        stream = client.stream(unique("aio-inline-hooks"))
        await stream.create()
        async with stream.consumer("sub", nack_delay=0) as consumer, stream.producer() as p:
            assert consumer._receive_nowait is not None and consumer._ack_nowait is not None
            mid = await p.send("x")
            await queued(consumer, 1)
            msg = await consumer.receive(WAIT)
            assert msg is not None
            await msg.nack()
            again = await consumer.receive(WAIT)
            assert again is not None
            await again.ack()
    assert hooks.calls == [("received", mid), ("nacked", mid), ("received", mid), ("acked", mid)]


# ------------------------------------------------- an ack of a copy from a dropped connection

ACKS = ["threaded", "asyncio awaited", "asyncio inline"]


def ack_with(how: str, api: Api, link: ConsumerLink, message_id: MessageId) -> None:
    if how == "asyncio inline":
        aio: AsyncMacrometaConsumer = getattr(link, "aio")  # noqa: B009
        setattr(aio, "ack", awaited_call)  # noqa: B010

        async def ack() -> None:
            aio.ack_nowait(message_id)

        api.loop.run(ack())
    else:
        link.ack(message_id)


def wait_until_queued(api: Api, link: ConsumerLink) -> None:
    """Until the copy sent on the new connection is queued at the link (asyncio: checked;
    threaded: given time: either way the rule makes the ack come out the same)."""

    async def arrived() -> None:
        aio: AsyncMacrometaConsumer = getattr(link, "aio")  # noqa: B009
        end = asyncio.get_running_loop().time() + WAIT
        while not aio._arrivals:
            assert asyncio.get_running_loop().time() < end, "the copy never arrived"
            await asyncio.sleep(0.01)

    if api.name == "asyncio":
        api.loop.run(arrived())
    else:
        threading.Event().wait(0.3)


@pytest.mark.parametrize("copy", ["queued before the ack", "sent after the ack"])
@pytest.mark.parametrize("how", ACKS)
def test_an_ack_of_a_copy_from_a_dropped_connection_follows_one_rule(how: str, copy: str) -> None:
    """The message was handed out on connection 0, which dropped; the broker sends it again on
    connection 1. Acked through the old copy, it is acked once on connection 1 (with the copy
    queued: at once, by that copy's id; else when the copy arrives) and never shown again, by
    every ack path alike: the protocol objects decide, not the path."""
    handed_out, acked = threading.Event(), threading.Event()
    acks: list[str] = []

    def script(peer: Peer, n: int) -> None:
        if n == 0:
            peer.send(delivery(0, b"once"))
            handed_out.wait(WAIT)
            peer.close()  # the copy handed out belongs to a dropped connection now
            return
        if copy == "sent after the ack":
            acked.wait(WAIT)
        peer.send(delivery(0, b"once", count=1))  # the very same message, again
        text = peer.read_text()
        acks.append(text or "")
        peer.send(delivery(1, b"next"))
        hold(peer)

    api = Api("asyncio" if how.startswith("asyncio") else "threaded")
    try:
        link = api.consumer_on(ScriptedServer(script))
        first = link.receive(WAIT)
        assert first is not None and first.payload == b"once"
        handed_out.set()
        if copy == "queued before the ack":
            wait_until_queued(api, link)
        ack_with(how, api, link, first.message_id)
        acked.set()
        after = link.receive(WAIT)
        assert after is not None and after.payload == b"next"  # the copy was not shown
        assert link.receive(0.2) is None
    finally:
        api.close()
    assert [json.loads(text)["messageId"] for text in acks] == [
        encode_message_id(MessageId("s", 1, 0))
    ]
