"""Pull mode over the macrometa transport, threaded and asyncio, against the emulator.

The consumer is sent only what it asked for (``permit`` frames), ``receive_many`` returns up
to ``max_messages``, and a cut connection, whose permits die with it, is asked again for what
is still wanted, losing nothing. Everything goes through the cutting proxy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

import pytest

import streamfw
import streamfw.aio
from streamfw.client import Client
from streamfw.testing.contract import unique
from tests.macrometa.conftest import KEY
from tests.macrometa.proxy import Proxy


@pytest.fixture
def client(proxy: Proxy) -> Any:
    opts: dict[str, Any] = {"api_key": KEY, "timeout": 5.0, "reconnect_deadline": 5.0}
    with streamfw.connect(f"macrometa+http://127.0.0.1:{proxy.port}", **opts) as c:
        yield c


def held(stats: dict[str, Any]) -> dict[str, int]:
    """Unacked messages per consumer name, on subscription ``w``."""
    consumers = stats["subscriptions"]["w"]["consumers"]
    return {c["consumerName"]: c["unackedMessages"] for c in consumers}


def settle() -> None:
    time.sleep(0.3)  # whatever the emulator would send beyond the permits has come by now


def test_never_more_deliveries_than_permits(client: Client) -> None:
    stream = client.stream(unique("pull")).create()
    puller = stream.consumer("w", type="shared", name="puller", pull_mode=True)
    other = stream.consumer("w", type="shared", name="other", receiver_queue_size=1)
    with stream.producer() as producer:
        for i in range(8):
            producer.send(i)
    assert len(puller.receive_many(2, timeout=5)) == 2
    settle()
    assert held(stream.stats()) == {"puller": 2, "other": 1}
    assert puller.receive() is not None  # asks for one more
    settle()
    assert held(stream.stats()) == {"puller": 3, "other": 1}
    puller.close()
    other.close()


def test_receive_many_returns_up_to_max_messages(client: Client) -> None:
    stream = client.stream(unique("pull")).create()
    with stream.consumer("w", pull_mode=True) as puller, stream.producer() as producer:
        for i in range(5):
            producer.send(i)
        assert [m.value for m in puller.receive_many(3, timeout=5)] == [0, 1, 2]
        assert [m.value for m in puller.receive_many(10, timeout=0.5)] == [3, 4]
        assert puller.receive_many(4, timeout=0.2) == []


def test_a_cut_connection_is_asked_again_and_loses_nothing(client: Client, proxy: Proxy) -> None:
    stream = client.stream(unique("pull")).create()
    with stream.consumer("w", pull_mode=True) as puller, stream.producer() as producer:
        producer.send(0)
        producer.send(1)
        first = puller.receive_many(2, timeout=5)
        assert [m.value for m in first] == [0, 1]  # held unacked across the cut
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            batch = pool.submit(puller.receive_many, 3, 10)  # asks for 3, then waits
            settle()
            proxy.cut()  # its permits die: only a new permit frame brings anything
            for i in range(2, 5):
                producer.send(i)
            again = batch.result(timeout=15)
        assert sorted(m.value for m in again) == [0, 1, 2]  # the unacked two come back
        for m in again:
            m.ack()
        assert [m.value for m in puller.receive_many(5, timeout=5)] == [3, 4]
        assert puller.receive_many(1, timeout=0.3) == []


# ----------------------------------------------------------------------------- asyncio


def aio_connect(proxy: Proxy) -> streamfw.aio.Opening[streamfw.aio.Client]:
    opts: dict[str, Any] = {"api_key": KEY, "timeout": 5.0, "reconnect_deadline": 5.0}
    return streamfw.aio.connect(f"macrometa+http://127.0.0.1:{proxy.port}", **opts)


@pytest.mark.anyio
async def test_aio_never_more_deliveries_than_permits(proxy: Proxy) -> None:
    async with aio_connect(proxy) as client:
        stream = client.stream(unique("aio-pull"))
        await stream.create()
        async with (
            stream.consumer("w", type="shared", name="puller", pull_mode=True) as puller,
            stream.consumer("w", type="shared", name="other", receiver_queue_size=1),
            stream.producer() as producer,
        ):
            for i in range(8):
                await producer.send(i)
            assert len(await puller.receive_many(2, timeout=5)) == 2
            await asyncio.sleep(0.3)
            assert held(await stream.stats()) == {"puller": 2, "other": 1}
            # the other consumer holds one; the puller gets the five left when it asks
            assert len(await puller.receive_many(10, timeout=0.5)) == 5


@pytest.mark.anyio
async def test_aio_a_cut_connection_is_asked_again_and_loses_nothing(proxy: Proxy) -> None:
    async with aio_connect(proxy) as client:
        stream = client.stream(unique("aio-pull"))
        await stream.create()
        async with stream.consumer("w", pull_mode=True) as puller, stream.producer() as producer:
            await producer.send(0)
            await producer.send(1)
            first = await puller.receive_many(2, timeout=5)
            assert [m.value for m in first] == [0, 1]
            batch = asyncio.create_task(puller.receive_many(3, timeout=10))
            await asyncio.sleep(0.3)
            proxy.cut()
            for i in range(2, 5):
                await producer.send(i)
            again = await asyncio.wait_for(batch, 15)
            assert sorted(m.value for m in again) == [0, 1, 2]
            for m in again:
                await m.ack()
            assert [m.value for m in await puller.receive_many(5, timeout=5)] == [3, 4]
            assert await puller.receive_many(1, timeout=0.3) == []
