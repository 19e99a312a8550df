"""What the fairness tests share: a task counting its turns, and a consumer drained beside it."""

from __future__ import annotations

import asyncio

import streamfw.aio

WAIT = 5.0  # seconds a receive may take before the test calls it stuck


class Ticker:
    """A task that only counts how often the event loop gave it a turn."""

    def __init__(self) -> None:
        self.turns = 0

    async def run(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)


async def drain_beside_a_ticker(
    consumer: streamfw.aio.Consumer, count: int, how: str
) -> tuple[list[object], int]:
    """Take and ack ``count`` messages ``how`` (``receive``, ``async for`` or ``receive_many``)
    while a ``Ticker`` runs; the values taken, and the turns the ticker had meanwhile."""
    ticker = Ticker()
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(0)  # it has had its first turn
    started = ticker.turns
    values: list[object] = []
    try:
        if how == "receive":
            for _ in range(count):
                msg = await consumer.receive(WAIT)
                assert msg is not None
                values.append(msg.value)
                await msg.ack()
        elif how == "async for":
            async for msg in consumer:
                values.append(msg.value)
                await msg.ack()
                if len(values) == count:
                    break
        else:
            for msg in await consumer.receive_many(count, timeout=WAIT):
                values.append(msg.value)
                await msg.ack()
        return values, ticker.turns - started  # before anything else suspends this task
    finally:
        task.cancel()
