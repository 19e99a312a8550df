"""The native asyncio macrometa link over real sockets: cuts, resend, reader resume, give-up.

Everything goes through the cutting proxy (``streamfw.testing.proxy``) in front of the
module's emulator, as the threaded link's tests in test_faults.py do.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from streamfw_macrometa.aio.rest import AsyncRest

import streamfw.aio
from streamfw.errors import ConnectionLost, OutcomeUnknown, SubscriptionBusy
from streamfw.message import MessageId
from streamfw.testing.contract import unique
from tests.macrometa.conftest import KEY
from tests.macrometa.proxy import Proxy

pytestmark = pytest.mark.anyio
N = 1500


def connect(proxy: Proxy, **options: Any) -> streamfw.aio.Opening[streamfw.aio.Client]:
    opts = {"api_key": KEY, "timeout": 5.0, "reconnect_deadline": 5.0, **options}
    return streamfw.aio.connect(f"macrometa+http://127.0.0.1:{proxy.port}", **opts)


async def take(consumer: streamfw.aio.Consumer) -> streamfw.aio.Message:
    msg = await consumer.receive(timeout=5)
    assert msg is not None, "nothing within 5 s"
    return msg


async def test_the_link_is_native(proxy: Proxy) -> None:
    async with connect(proxy) as client:
        assert client.native


async def test_resend_after_cuts_loses_nothing(proxy: Proxy) -> None:
    async with connect(proxy) as client:
        s = client.stream(unique("aio-cut"))
        await s.create()
        async with s.consumer("sub") as consumer, s.producer(max_pending=200) as producer:
            received: dict[int, int] = {}
            acked: set[MessageId] = set()
            reshown: list[MessageId] = []

            async def consume() -> None:
                while True:
                    msg = await consumer.receive(timeout=0.2)
                    if msg is None:
                        continue
                    if msg.id in acked:
                        reshown.append(msg.id)
                    received[msg.value] = received.get(msg.value, 0) + 1
                    await msg.ack()
                    acked.add(msg.id)

            reader = asyncio.create_task(consume())
            futures: list[asyncio.Future[MessageId]] = []
            cuts = 0
            for i in range(N):
                futures.append(await producer.send_async(i))
                if i % 300 == 150:
                    cuts += bool(proxy.cut())
            _, pending = await asyncio.wait(futures, timeout=30)
            assert not pending, f"{len(pending)} sends neither confirmed nor failed in 30 s"
            confirmed = [i for i, f in enumerate(futures) if f.exception() is None]
            assert len(confirmed) == N  # the deadline is long enough for every resend
            end = time.monotonic() + 30
            while time.monotonic() < end and not set(confirmed) <= set(received):
                await asyncio.sleep(0.05)
            reader.cancel()
            assert cuts >= 3 and proxy.connections >= 4  # really reconnected
            missing = sorted(set(confirmed) - set(received))
            assert not missing, f"confirmed but never delivered: {missing[:10]}"
            assert not reshown, "a message id came back after its ack"


async def test_unacked_come_back_acked_do_not(proxy: Proxy) -> None:
    async with connect(proxy) as client:
        s = client.stream(unique("aio-redeliver"))
        await s.create()
        async with s.consumer("sub") as c, s.producer() as p:
            for i in range(4):
                await p.send(i)
            got = [await take(c) for _ in range(4)]
            await got[0].ack()
            await got[2].ack()
            proxy.cut()
            again = [await take(c), await take(c)]
            assert sorted(m.value for m in again) == [1, 3]
            for m in again:
                await m.ack()
            assert await c.receive(timeout=0.5) is None


async def test_reader_resumes_after_the_last_message_taken(proxy: Proxy) -> None:
    async with connect(proxy) as client:
        s = client.stream(unique("aio-reader"))
        await s.create()
        async with s.consumer("keep"), s.producer() as p:
            for i in range(3):
                await p.send(i)
            async with s.reader("earliest") as r:
                assert (await take(r)).value == 0
                await asyncio.sleep(0.2)  # let the other two sit in the client queue
                proxy.cut()
                await p.send(3)
                assert [(await take(r)).value for _ in range(3)] == [1, 2, 3]


async def test_every_connection_gets_its_own_otp(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued: list[str] = []
    original = AsyncRest.otp

    async def spy(self: AsyncRest, timeout: float | None = None) -> str:
        otp = await original(self, timeout)
        issued.append(otp)
        return otp

    monkeypatch.setattr(AsyncRest, "otp", spy)
    async with connect(proxy, auth="otp") as client:
        s = client.stream(unique("aio-otp"))
        await s.create()
        async with s.consumer("sub") as c, s.producer() as p:
            await p.send(1)
            await (await take(c)).ack()
            proxy.cut()  # both reconnect, each with a new OTP
            await p.send(2)
            assert (await take(c)).value == 2
    # two connects and two reconnects, each with an OTP of its own (the upgrades may ride a
    # pooled connection the OTP call opened, so the proxy does not see them first)
    assert len(issued) == 4 and len(set(issued)) == 4


async def test_gives_up_with_a_typed_error(proxy: Proxy) -> None:
    deadline = 1.0
    async with connect(proxy, reconnect_deadline=deadline) as client:
        s = client.stream(unique("aio-gone"))
        await s.create()
        c = await s.consumer("sub").__aenter__()
        p = await s.producer().__aenter__()
        proxy.refusing.set()
        proxy.cut()
        start = time.monotonic()
        late = await p.send_async("into the void")
        with pytest.raises((ConnectionLost, OutcomeUnknown), match="gave up reconnecting"):
            await asyncio.wait_for(late, deadline + 5)
        with pytest.raises(ConnectionLost, match="gave up reconnecting") as e:
            await c.receive(timeout=deadline + 5)
        assert time.monotonic() - start < deadline + 5
        assert "127.0.0.1" in str(e.value) and "?" not in str(e.value)
        with pytest.raises(ConnectionLost):
            await p.send("still gone")
        proxy.refusing.clear()


async def test_secrets_stay_out_of_reprs_and_errors(proxy: Proxy) -> None:
    async with connect(proxy, auth="otp") as client:
        s = client.stream(unique("aio-secret"))
        await s.create()
        async with s.consumer("sub"):
            with pytest.raises(SubscriptionBusy) as e:  # the upgrade is refused: 409
                await s.consumer("sub")
        chain: list[BaseException] = []
        error: BaseException | None = e.value
        while error is not None and len(chain) < 10:
            chain.append(error)
            error = error.__cause__ or error.__context__
        shown = " ".join([repr(client), *(f"{x!s} {x!r}" for x in chain)])
        assert "otp=" not in shown and "?" not in str(e.value) and KEY not in shown
