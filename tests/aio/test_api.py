"""streamfw.aio behaviour the sync facade cannot show: async iteration, awaitable opening,
send_async, sharing a loopback broker with sync clients, the fixture, what is native."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable

import pytest
from streamfw_loopback import LoopbackTransport

import streamfw
import streamfw.aio
from streamfw.api import ProducerOptions, TransportSpec
from streamfw.errors import Closed, ConfigError, DecodeError, SubscriptionBusy
from streamfw.message import Envelope
from streamfw.plugins import installed
from tests.aio.conftest import Target

pytestmark = pytest.mark.anyio

WAIT = 5.0


async def new_stream(client: streamfw.aio.Client) -> streamfw.aio.Stream:
    return await client.stream(f"api-{uuid.uuid4().hex[:8]}").create()


async def write_raw(client: streamfw.aio.Client, stream: streamfw.aio.Stream) -> None:
    """Two payloads through the SPI with no codec tag: one not JSON, one JSON."""
    raw = await client.transport.open_producer(stream.ref, ProducerOptions())
    for payload in (b"\xff not json", b'{"ok": true}'):
        await asyncio.wait_for(await raw.send(Envelope(payload)), WAIT)
    await raw.close()


async def test_async_for_survives_a_decode_error(client: streamfw.aio.Client) -> None:
    stream = await new_stream(client)
    async with stream.consumer("sub", codec="json") as c:
        await write_raw(client, stream)
        iterator = aiter(c)
        with pytest.raises(DecodeError) as err:
            await anext(iterator)
        assert err.value.undecodable is not None
        bad = err.value.undecodable
        assert isinstance(bad, streamfw.aio.Message) and bad.payload == b"\xff not json"
        await bad.ack()
        msg = await asyncio.wait_for(anext(iterator), WAIT)  # the same iterator goes on
        assert msg.value == {"ok": True}
        await msg.ack()


async def test_messages_hands_decode_errors_to_an_async_callback(
    client: streamfw.aio.Client,
) -> None:
    stream = await new_stream(client)
    parked: list[bytes] = []

    async def park(err: DecodeError) -> None:
        assert isinstance(err.undecodable, streamfw.aio.Message)
        parked.append(err.undecodable.payload)
        await err.undecodable.nack()

    async with stream.consumer("sub", codec="json") as c:
        await write_raw(client, stream)
        async for msg in c.messages(on_decode_error=park):
            assert msg.value == {"ok": True}
            break
    assert parked == [b"\xff not json"]


async def test_open_by_await_and_errors_like_the_sync_api(
    client: streamfw.aio.Client, target: Target
) -> None:
    stream = await new_stream(client)
    with pytest.raises(ConfigError, match="receiver_queue_size"):
        stream.consumer("sub", receiver_queue_size=0)  # checked before anything is awaited
    first = await stream.consumer("sub")
    with pytest.raises(SubscriptionBusy):
        await stream.consumer("sub")
    producer = await stream.producer(name="p1")
    futures = [await producer.send_async({"n": i}, key=f"k{i}") for i in range(5)]
    ids = await asyncio.gather(*futures)
    assert ids == sorted(ids)
    got = [await first.receive(WAIT) for _ in range(5)]
    assert [(m.id, m.value, m.key) for m in got if m] == [
        (mid, {"n": i}, f"k{i}") for i, mid in enumerate(ids)
    ]
    for m in got:
        assert m is not None
        await m.ack()
    await producer.close()
    await producer.close()  # idempotent
    with pytest.raises(Closed):
        await producer.send("late")
    await first.close()
    with pytest.raises(Closed):
        await first.receive(0)


async def test_reader_from_earliest(client: streamfw.aio.Client) -> None:
    stream = await new_stream(client)
    async with stream.producer() as p:
        ids = [await p.send(i) for i in range(3)]
    async with stream.reader("earliest") as r:
        assert [(await r.receive(WAIT)).value for _ in range(3)] == [0, 1, 2]  # type: ignore[union-attr]
    async with stream.reader(ids[0]) as r:
        msg = await r.receive(WAIT)
        assert msg is not None and msg.value == 1
    assert await stream.subscriptions() == []


async def test_admin_calls(client: streamfw.aio.Client) -> None:
    stream = await new_stream(client)
    assert await stream.exists()
    assert stream.name in [s.name for s in await client.streams(local=False)]
    async with stream.consumer("billing"):
        pass
    async with stream.producer() as p:
        await p.send(1)
    assert await stream.backlog() == 1
    assert [s.name for s in await stream.subscriptions()] == ["billing"]
    await stream.clear_backlog("billing")
    assert await stream.backlog() == 0
    await stream.delete_subscription("billing")
    await stream.delete()
    assert not await stream.exists()
    await client.close()
    with pytest.raises(Closed):
        await client.streams()


async def test_loopback_broker_is_shared_with_sync_clients() -> None:
    """loopback://NAME is one broker for both APIs: a sync producer in a thread reaches an
    async consumer on the loop, and the other way round."""
    url = f"loopback://shared-{uuid.uuid4().hex[:8]}"
    with streamfw.connect(url) as sync_client:
        sync_stream = sync_client.stream("orders").create()
        async with streamfw.aio.connect(url) as client:
            assert client.native
            stream = client.stream("orders")
            async with stream.consumer("async-side") as c:
                sync_consumer = sync_stream.consumer("sync-side")

                def produce() -> None:
                    with sync_stream.producer() as p:
                        p.send("from a thread")

                thread = threading.Thread(target=produce)
                thread.start()
                msg = await c.receive(WAIT)  # woken from the producer's thread
                thread.join()
                assert msg is not None and msg.value == "from a thread"
                await msg.ack()
                async with stream.producer() as p:
                    await p.send("from the loop")
                got = await asyncio.to_thread(sync_consumer.receive, WAIT)
                assert got is not None
                assert [got.value] == ["from a thread"]
                got.ack()
                got = await asyncio.to_thread(sync_consumer.receive, WAIT)
                assert got is not None and got.value == "from the loop"
                sync_consumer.close()


async def test_the_pytest_plugin_fixture(streamfw_aio_client: streamfw.aio.Client) -> None:
    assert streamfw_aio_client.native
    stream = await streamfw_aio_client.stream("fixture").create()
    async with stream.consumer("s") as c, stream.producer() as p:
        await p.send("hi")
        msg = await c.receive(WAIT)
        assert msg is not None and msg.value == "hi"


def test_loopback_and_macrometa_are_native() -> None:
    specs = installed().transports()
    assert specs["loopback"].async_factory is not None
    assert specs["macrometa"].async_factory is not None


def test_streamfw_plugins_says_which_transports_are_native(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streamfw.cli import main

    assert main(["plugins", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["transports"]["loopback"]["asyncio"] == "native"
    assert {t["asyncio"] for t in listed["transports"].values()} <= {"native", "threads"}


class SyncOnlyPlugin:
    """A transport plugin that offers only the sync SPI (loopback's, under another scheme)."""

    @streamfw.hookimpl
    def streamfw_register_transports(self, register: Callable[[TransportSpec], None]) -> None:
        register(TransportSpec("synconly", LoopbackTransport.from_config, "sync SPI only"))


async def test_a_sync_only_transport_runs_through_the_thread_adapter() -> None:
    plugins = streamfw.discover(entry_points=False, extra={"synconly": SyncOnlyPlugin()})
    url = f"synconly://t-{uuid.uuid4().hex[:8]}"
    async with streamfw.aio.connect(url, plugins=plugins) as client:
        assert not client.native
        stream = await client.stream("orders").create()
        async with stream.consumer("sub") as c, stream.producer() as p:
            await p.send("through threads")
            msg = await c.receive(WAIT)
            assert msg is not None and msg.value == "through threads"
            await msg.ack()
