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
between machines. The targets (issue 10): aio and sync at least 0.5x the floor.

Beside each rate but the thread adapter's, the process's CPU time per message (the median of
the rounds and the lowest): ``time.process_time`` of the run less that of the same run with
one message, over one message fewer, so that opening and closing (plugin discovery for the
floor, about 10 ms) count for nothing. Then the floor's CPU per message divided by the run's:
the ratio it would reach with a CPU to itself. On a machine shared with other work, where
preemption moves the wall-clock ratio by tens of percent from run to run, that ratio is the
steadier one.
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


async def _aio_rate(value: Any, messages: int, *, threads: bool) -> float:
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

            start = time.perf_counter()
            await asyncio.gather(consume(), produce())
            return messages / (time.perf_counter() - start)


async def _aio_one_task_rate(value: Any, messages: int) -> float:
    import streamfw.aio

    url = f"loopback://bench-{uuid.uuid4().hex}"
    async with streamfw.aio.connect(url, plugins=plugin_set(tracing=False)) as client:
        stream = await client.stream("bench").create()
        async with stream.consumer("bench") as consumer, stream.producer() as producer:
            last = None
            start = time.perf_counter()
            for _ in range(messages):
                await producer.send(value)
                msg = await consumer.receive(RECEIVE_TIMEOUT)
                if msg is None:
                    raise TimeoutError("aio: a message did not arrive")
                await msg.ack()
                last = msg
            elapsed = time.perf_counter() - start
            if last is None or last.value != value:
                raise AssertionError("aio: the last message was not decoded intact")
            return messages / elapsed


def run(rounds: int, messages: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Interleave them all; messages per second per round, and CPU microseconds per message
    per round of every run but the thread adapter's."""
    value = make_value()
    cpu: dict[str, list[float]] = {}

    def with_cpu(name: str, rate: Callable[[int], float]) -> Callable[[], float]:
        cpu[name] = []

        def timed() -> float:
            start = time.process_time()
            rate(1)  # opening and closing, to take off
            middle = time.process_time()
            result = rate(messages)
            end = time.process_time()
            cpu[name].append(((end - middle) - (middle - start)) / (messages - 1) * 1e6)
            return result

        return timed

    runs: dict[str, Callable[[], float]] = {
        "aio": with_cpu("aio", lambda n: asyncio.run(_aio_rate(value, n, threads=False))),
        "aio_one_task": with_cpu(
            "aio_one_task", lambda n: asyncio.run(_aio_one_task_rate(value, n))
        ),
        "aio_threads": lambda: asyncio.run(_aio_rate(value, messages // 4, threads=True)),
        "sync": with_cpu("sync", lambda n: streamfw_rate(value, n)),
        "floor": with_cpu("floor", lambda n: floor_rate(value, n)),
    }
    rates = interleave(runs, rounds)
    return rates, {name: kept[1:] for name, kept in cpu.items()}  # less the warm-up run


def report(samples: dict[str, list[float]], cpu: dict[str, list[float]]) -> str:
    floor, floor_cpu = median(samples["floor"]), median(cpu["floor"])
    lines = [
        f"{'run':<14} {'msgs/s':>10} {'±':>6} {'x floor':>8}"
        f"  {'CPU us/msg (min)':>16} {'x floor CPU':>11}  target"
    ]
    for name, rates in samples.items():
        line = f"{name:<14} {median(rates):>10,.0f} {spread(rates):>6.0%}"
        line += f" {median(rates) / floor:>8.2f}  "
        if name in cpu:
            line += f"{median(cpu[name]):>8.1f} ({min(cpu[name]):>5.1f})"
            line += f" {floor_cpu / median(cpu[name]):>11.2f}  "
        else:
            line += f"{'':>16} {'':>11}  "
        if name in ("aio", "sync"):
            line += "ok" if median(rates) / floor >= TARGET else "MISS  <<<"
            line += f" (>= {TARGET:g}x floor)"
        lines.append(line.rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and messages")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--messages", type=int, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    messages = max(2, args.messages or (5_000 if args.quick else 20_000))
    print(f"loopback publish->receive->ack, 1 KiB JSON, {messages:,} messages x {rounds} rounds")
    print(report(*run(rounds, messages)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
