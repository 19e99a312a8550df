"""Loopback publish -> receive -> ack with the asyncio API, beside the sync API and the floor.

Run: ``.venv/bin/python -m benchmarks.aio_loopback`` (``--quick`` for a short, noisier run).

* aio: ``streamfw.aio`` on ``loopback://``, natively on one event loop: a producer task
  awaiting ``producer.send(value)`` (each send confirmed) and a consumer task awaiting
  ``consumer.receive()`` then ``msg.ack()``; the clock runs from starting both tasks until
  the last ack. A loopback send completes without suspending, so the producer task runs ahead
  until the consumer's turn comes; the broker's receiver queue (1000) bounds what waits in the
  consumer's inbox, and the rest waits in the backlog, as it would for a slow consumer.
* aio_one_task (no target): send, receive and ack in turn in one task: the cost of the async
  layers without any hand-over between tasks.
* aio_threads (no target): the same job as ``aio`` through the thread adapter
  (``connect(threads=True)``), what a transport without a native async side gets.
* sync: the sync API's figure, ``benchmarks.throughput.streamfw_rate`` (a producer thread and
  a consumer thread), in the same run.
* floor: ``Pipeline.encode`` then ``Pipeline.decode`` inline in one thread
  (``benchmarks.throughput.floor_rate``): the rate no transport can beat.

1 KiB JSON messages (``benchmarks.payload.make_value``); wall-clock rates, medians of
interleaved rounds (``benchmarks.timing.interleave``); ratios to the floor are what to compare
between machines. The targets (issue 10): aio and sync at least 0.5x the floor. Beside the two
native asyncio runs, the event loop thread's CPU time per message (``time.thread_time``; the
median of the rounds, and the lowest, which preemption by other processes inflates least).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks.payload import make_value
from benchmarks.throughput import RECEIVE_TIMEOUT, floor_rate, plugin_set, streamfw_rate
from benchmarks.timing import interleave, median, spread

TARGET = 0.5  # x the inline codec floor


Timed = tuple[float, float]  # (messages per second, CPU microseconds per message)


def _timed(messages: int, wall: float, cpu: float) -> Timed:
    return messages / wall, cpu / messages * 1e6


async def _aio_rate(value: Any, messages: int, *, threads: bool) -> Timed:
    import streamfw.aio

    url = f"loopback://bench-{uuid.uuid4().hex}"
    plugins = plugin_set(tracing=False)
    async with streamfw.aio.connect(url, plugins=plugins, threads=threads) as client:
        stream = await client.stream("bench").create()
        async with stream.consumer("bench") as consumer, stream.producer() as producer:

            async def produce() -> None:
                for _ in range(messages):
                    await producer.send(value)

            async def consume() -> None:
                last = None
                for _ in range(messages):
                    msg = await consumer.receive(RECEIVE_TIMEOUT)
                    if msg is None:
                        raise TimeoutError("aio: a message did not arrive")
                    await msg.ack()
                    last = msg
                if last is None or last.value != value:
                    raise AssertionError("aio: the last message was not decoded intact")

            start, cpu = time.perf_counter(), time.thread_time()
            await asyncio.gather(consume(), produce())
            return _timed(messages, time.perf_counter() - start, time.thread_time() - cpu)


async def _aio_one_task_rate(value: Any, messages: int) -> Timed:
    import streamfw.aio

    url = f"loopback://bench-{uuid.uuid4().hex}"
    async with streamfw.aio.connect(url, plugins=plugin_set(tracing=False)) as client:
        stream = await client.stream("bench").create()
        async with stream.consumer("bench") as consumer, stream.producer() as producer:
            last = None
            start, cpu = time.perf_counter(), time.thread_time()
            for _ in range(messages):
                await producer.send(value)
                msg = await consumer.receive(RECEIVE_TIMEOUT)
                if msg is None:
                    raise TimeoutError("aio: a message did not arrive")
                await msg.ack()
                last = msg
            timed = _timed(messages, time.perf_counter() - start, time.thread_time() - cpu)
            if last is None or last.value != value:
                raise AssertionError("aio: the last message was not decoded intact")
            return timed


def run(rounds: int, messages: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Interleave them all; messages per second per round, and the native asyncio runs' CPU
    microseconds per message per round."""
    value = make_value()
    cpu: dict[str, list[float]] = {"aio": [], "aio_one_task": []}

    def noting(name: str, timed: Timed) -> float:
        cpu[name].append(timed[1])
        return timed[0]

    runs: dict[str, Callable[[], float]] = {
        "aio": lambda: noting("aio", asyncio.run(_aio_rate(value, messages, threads=False))),
        "aio_one_task": lambda: noting(
            "aio_one_task", asyncio.run(_aio_one_task_rate(value, messages))
        ),
        "aio_threads": lambda: asyncio.run(_aio_rate(value, messages // 4, threads=True))[0],
        "sync": lambda: streamfw_rate(value, messages),
        "floor": lambda: floor_rate(value, messages),
    }
    rates = interleave(runs, rounds)
    return rates, {name: kept[1:] for name, kept in cpu.items()}  # less the warm-up run


def report(samples: dict[str, list[float]], cpu: dict[str, list[float]]) -> str:
    floor = median(samples["floor"])
    lines = [
        f"{'run':<14} {'msgs/s':>10} {'±':>6} {'x floor':>8}  {'CPU us/msg (min)':>16}  target",
        *(
            f"{name:<14} {median(rates):>10,.0f} {spread(rates):>6.0%}"
            f" {median(rates) / floor:>8.2f}  "
            + (
                f"{median(cpu[name]):>7.1f} ({min(cpu[name]):>5.1f})"
                if name in cpu
                else f"{'':>16}"
            )
            + "  "
            + (
                ("ok" if median(rates) / floor >= TARGET else "MISS  <<<")
                + f" (>= {TARGET:g}x floor)"
                if name in ("aio", "sync")
                else ""
            )
            for name, rates in samples.items()
        ),
    ]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and messages")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--messages", type=int, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    messages = args.messages or (5_000 if args.quick else 20_000)
    print(f"loopback publish->receive->ack, 1 KiB JSON, {messages:,} messages x {rounds} rounds")
    print(report(*run(rounds, messages)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
